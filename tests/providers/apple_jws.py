"""App Store signed data for tests: a root CA, an intermediate and a leaf made here
(with the extensions Apple's chain carries and ``SignedDataVerifier`` checks),
and JWS signed by the leaf with the chain in ``x5c``, as the App Store signs
transactions and server notifications. The root is configured as the trusted
one; a second, untrusted authority makes forgeries."""

from __future__ import annotations

import base64
import datetime
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

INTERMEDIATE_OID = x509.ObjectIdentifier("1.2.840.113635.100.6.2.1")
"""Marks Apple's WWDR intermediate."""
LEAF_OID = x509.ObjectIdentifier("1.2.840.113635.100.6.11.1")
"""Marks the App Store's signing certificate."""


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    *,
    issuer: tuple[x509.Certificate, ec.EllipticCurvePrivateKey] | None,
    ca: bool,
    marker: x509.ObjectIdentifier | None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    issuer_cert, issuer_key = issuer if issuer is not None else (None, key)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_cert.subject if issuer_cert is not None else _name(subject))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=not ca,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=ca,
                crl_sign=ca,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key()),
            critical=False,
        )
    )
    if marker is not None:
        builder = builder.add_extension(
            x509.UnrecognizedExtension(marker, b"\x05\x00"), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


@dataclass
class AppleSigner:
    """One authority's chain, signing like the App Store."""

    root: x509.Certificate
    leaf_key: ec.EllipticCurvePrivateKey
    chain: list[x509.Certificate]
    """Leaf, intermediate, root."""

    @classmethod
    def create(cls, name: str = "Test Apple Root CA") -> AppleSigner:
        root_key = ec.generate_private_key(ec.SECP256R1())
        root = _certificate(name, root_key, issuer=None, ca=True, marker=None)
        middle_key = ec.generate_private_key(ec.SECP256R1())
        middle = _certificate(
            f"{name} WWDR", middle_key, issuer=(root, root_key), ca=True, marker=INTERMEDIATE_OID
        )
        leaf_key = ec.generate_private_key(ec.SECP256R1())
        leaf = _certificate(
            f"{name} Store Signing",
            leaf_key,
            issuer=(middle, middle_key),
            ca=False,
            marker=LEAF_OID,
        )
        return cls(root=root, leaf_key=leaf_key, chain=[leaf, middle, root])

    def write_root(self, path: Path) -> Path:
        path.write_bytes(self.root.public_bytes(Encoding.DER))
        return path

    def sign(self, payload: dict[str, Any]) -> str:
        x5c = [base64.b64encode(c.public_bytes(Encoding.DER)).decode() for c in self.chain]
        return jwt.encode(payload, self.leaf_key, algorithm="ES256", headers={"x5c": x5c})


def transaction(
    *,
    transaction_id: str,
    product_id: str,
    bundle_id: str,
    environment: str = "Production",
    kind: str = "Consumable",
    account_token: str | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A ``JWSTransactionDecodedPayload`` of a purchase made now."""
    now = int(time.time() * 1000)
    payload: dict[str, Any] = {
        "transactionId": transaction_id,
        "originalTransactionId": transaction_id,
        "bundleId": bundle_id,
        "productId": product_id,
        "purchaseDate": now,
        "originalPurchaseDate": now,
        "quantity": 1,
        "type": kind,
        "inAppOwnershipType": "PURCHASED",
        "signedDate": now,
        "environment": environment,
        "transactionReason": "PURCHASE",
        "storefront": "USA",
        "storefrontId": "143441",
        "price": 9990,
        "currency": "USD",
    }
    if account_token is not None:
        payload["appAccountToken"] = account_token
    return {**payload, **extra}


def notification(
    kind: str,
    *,
    bundle_id: str,
    app_apple_id: int,
    signed_transaction: str | None = None,
    environment: str = "Production",
) -> dict[str, Any]:
    """A ``ResponseBodyV2DecodedPayload`` (App Store Server Notifications v2)."""
    data: dict[str, Any] = {
        "appAppleId": app_apple_id,
        "bundleId": bundle_id,
        "bundleVersion": "1",
        "environment": environment,
    }
    if signed_transaction is not None:
        data["signedTransactionInfo"] = signed_transaction
    return {
        "notificationType": kind,
        "notificationUUID": str(uuid.uuid4()),
        "data": data,
        "version": "2.0",
        "signedDate": int(time.time() * 1000),
    }
