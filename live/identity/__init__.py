"""Who is calling: access tokens (JWTs) verified against the platform's keys.

``keys`` (which key may verify which algorithm), ``jwks`` (the published key set,
cached and refreshed), ``claims`` (claims to a profile), ``verifier`` (the
checks), ``service`` (the node's verifier and the JWKS cache's life),
``minting`` (tokens for development and tests).
"""
