"""The one profile an XML signature must fit to be accepted, and the reason for each refusal.

A verifier that lets each caller decide which algorithms and transforms it
accepts ends up accepting whatever one caller forgot to refuse.  So what the
service accepts is written down here once, as a frozen
:class:`VerificationPolicy` (after signxml's ``SignatureConfiguration``), and
:func:`service.signing.xmldsig.verify_signature` enforces all of it itself.
Every refusal carries one :class:`Reason`: a stable label per rule, for the
log, the signature-failure metrics and the tests.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from service import namespaces as ns


@enum.unique
class Reason(enum.StrEnum):
    """Why a signature, a WS-Security header or a signed Statement was refused.

    The value is :attr:`service.errors.SecurityFault.reason`.  The first group
    are the rules of :func:`~service.signing.xmldsig.verify_signature` (the
    :class:`VerificationPolicy`), in the order it checks them; the second are
    the structural and time rules of
    :class:`~service.signing.wsse.WsseVerifier` and
    :class:`~service.signing.statement_signature.StatementVerifier`.  The
    trust store's reasons (``certificate_validity``, ``untrusted_issuer``...)
    are those of :meth:`service.signing.trust.TrustStore.check`.
    """

    #: ds:Signature is not SignedInfo, SignatureValue and an optional KeyInfo (InvalidSecurity).
    SIGNATURE_STRUCTURE = "signature_structure"
    #: SignedInfo is not CanonicalizationMethod, SignatureMethod, References (InvalidSecurity).
    SIGNED_INFO_STRUCTURE = "signed_info_structure"
    #: SignedInfo's CanonicalizationMethod is not in the policy (UnsupportedAlgorithm).
    C14N_METHOD = "c14n_method"
    #: The SignatureMethod is not in the policy, or has parameters (UnsupportedAlgorithm).
    SIGNATURE_METHOD = "signature_method"
    #: Fewer than one or more than ``max_references`` References (InvalidSecurity).
    REFERENCE_COUNT = "reference_count"
    #: A Reference is not Transforms, DigestMethod, DigestValue, or is typed (InvalidSecurity).
    REFERENCE_STRUCTURE = "reference_structure"
    #: A Transform's algorithm is in none of the policy's chains: XSLT, XPath,
    #: inclusive C14N... (UnsupportedAlgorithm).
    TRANSFORM_ALGORITHM = "transform_algorithm"
    #: A Reference's Transforms are missing, or not one of the policy's chains (InvalidSecurity).
    REFERENCE_TRANSFORMS = "reference_transforms"
    #: A parameter of a transform or C14N method other than one well-formed
    #: InclusiveNamespaces PrefixList on exclusive C14N (InvalidSecurity).
    INCLUSIVE_PREFIX_LIST = "inclusive_prefix_list"
    #: The DigestMethod is not in the policy, or has parameters (UnsupportedAlgorithm).
    DIGEST_METHOD = "digest_method"
    #: The targets don't match the References one to one, or one lies in the
    #: Signature itself (InvalidSecurity).
    REFERENCE_TARGETS = "reference_targets"
    #: An element the policy requires to be signed is not referenced (InvalidSecurity).
    REQUIRED_REFERENCE = "required_reference"
    #: The Signature sits inside a referenced element whose chain does not begin
    #: with the enveloped-signature transform (InvalidSecurity).
    ENVELOPED_SIGNATURE = "enveloped_signature"
    #: The key is not of the type the SignatureMethod needs (FailedCheck).
    KEY_TYPE = "key_type"
    #: The key is smaller than the policy's minimum (FailedAuthentication).
    WEAK_KEY = "weak_key"
    #: SignedInfo or a referenced element cannot be canonicalized (FailedCheck).
    C14N = "c14n"
    #: The SignatureValue does not verify over SignedInfo (FailedCheck).
    SIGNED_INFO_SIGNATURE = "signed_info_signature"
    #: A Reference's DigestValue does not match its target (FailedCheck).
    REFERENCE_DIGEST = "reference_digest"

    #: Missing, duplicated or misplaced Envelope, Header, Security, Signature,
    #: Timestamp or Statement parts (InvalidSecurity).
    STRUCTURE = "structure"
    #: Two elements carry the same ID (InvalidSecurity).
    DUPLICATE_ID = "duplicate_id"
    #: A Reference URI is not a same-document ``#id`` that resolves (InvalidSecurity).
    REFERENCE_URI = "reference_uri"
    #: A Reference points at an element that may not be signed there (InvalidSecurity).
    REFERENCE_TARGET = "reference_target"
    #: KeyInfo, the security token or its certificate is unusable (InvalidSecurity).
    TOKEN = "token"  # noqa: S105 (a reason, not a secret)
    #: The Timestamp is malformed (InvalidSecurity).
    TIMESTAMP = "timestamp"
    #: The Timestamp expires before it is created (MessageExpired).
    TIMESTAMP_ORDER = "timestamp_order"
    #: The Timestamp is created after now plus the clock skew (MessageExpired).
    FUTURE = "future"
    #: The Timestamp expired before now minus the clock skew (MessageExpired).
    EXPIRED = "expired"
    #: The Timestamp was created longer ago than the maximum age (MessageExpired).
    STALE = "stale"
    #: The same signed message was already accepted (InvalidSecurity).
    REPLAY = "replay"


#: The transform chains the profile knows how to apply, exactly as written.
EXCLUSIVE_C14N_CHAIN = (ns.EXC_C14N,)
ENVELOPED_CHAIN = (ns.ENVELOPED, ns.EXC_C14N)


@dataclass(frozen=True)
class VerificationPolicy:
    """What a signature must be to be accepted; everything else is refused.

    The defaults are the service's profile: exclusive C14N, SHA-256 or
    SHA-512, RSA (2048 bits or more) or ECDSA (256 bits or more), no SHA-1,
    MD5 or HMAC.
    """

    #: SignedInfo's CanonicalizationMethod: exclusive C14N without comments,
    #: optionally with an InclusiveNamespaces PrefixList.
    c14n_methods: frozenset[str] = frozenset({ns.EXC_C14N})
    #: SignatureMethod algorithms, with no parameters (HMACOutputLength...).
    signature_methods: frozenset[str] = frozenset({ns.RSA_SHA256, ns.RSA_SHA512, ns.ECDSA_SHA256})
    #: DigestMethod algorithms of the References.
    digest_methods: frozenset[str] = frozenset({ns.SHA256, ns.SHA512})
    #: Each Reference's Transforms, exactly one of these chains, in order: exclusive
    #: C14N (with an optional PrefixList), optionally preceded by the enveloped-
    #: signature transform (node-soap's default).  No Transforms -- which would
    #: mean inclusive C14N 1.0 -- or any other transform is refused.
    transform_chains: frozenset[tuple[str, ...]] = frozenset(
        {EXCLUSIVE_C14N_CHAIN, ENVELOPED_CHAIN}
    )
    #: References in one SignedInfo: at most this many (Body, Timestamp, the
    #: token and the X-Road header blocks fit in the default).
    max_references: int = 12
    #: Element names (Clark notation) that must be among the referenced
    #: elements; the caller finds each at its place, never by ID.
    required_references: frozenset[str] = frozenset()
    #: Smallest RSA modulus accepted, in bits.
    min_rsa_bits: int = 2048
    #: Smallest elliptic curve accepted, in bits.
    min_ec_bits: int = 256
    #: WS-Security Timestamp: how far the sender's clock may be off, in seconds.
    clock_skew_s: float = 300
    #: WS-Security Timestamp: how long after its creation a message is accepted, in seconds.
    max_age_s: float = 300

    def __post_init__(self) -> None:
        """Refuse a policy that cannot be enforced (a mistake found at start, not per request)."""
        if self.max_references < 1:
            raise ValueError("max_references must be at least 1")
        if self.clock_skew_s < 0 or self.max_age_s < 0:
            raise ValueError("clock_skew_s and max_age_s must not be negative")
        if not self.c14n_methods <= {ns.EXC_C14N}:
            raise ValueError("SignedInfo is canonicalized with exclusive C14N only")
        for chain in self.transform_chains:
            if chain not in (EXCLUSIVE_C14N_CHAIN, ENVELOPED_CHAIN):
                raise ValueError(f"transform chain {chain} is not one the verifier applies")

    @property
    def known_transforms(self) -> frozenset[str]:
        """Return every transform algorithm that appears in an allowed chain."""
        return frozenset(algorithm for chain in self.transform_chains for algorithm in chain)


#: The signed Statement element (its own enveloped signature).
STATEMENT_TAG = f"{{{ns.TNS}}}Statement"

#: The WS-Security profile: the Body and the Timestamp must be signed.
WSSE_POLICY = VerificationPolicy(
    required_references=frozenset({f"{{{ns.SOAP11_ENV}}}Body", f"{{{ns.WSU}}}Timestamp"})
)
#: The Statement's profile: one Reference, to the Statement itself.
STATEMENT_POLICY = VerificationPolicy(
    max_references=1, required_references=frozenset({STATEMENT_TAG})
)
