"""py-spiffe interop client for Mayfly's Workload API.

Fetches the default X.509-SVID, every X.509-SVID, the X.509 bundles, a JWT-SVID for the audience
given with --audience, and the JWT bundles, all with py-spiffe's WorkloadApiClient
(the socket comes from SPIFFE_ENDPOINT_SOCKET). It checks with py-spiffe's and the
cryptography package's own code that the private key belongs to the leaf certificate and
that the JWT-SVID verifies against the JWT bundle, then prints one JSON object. Any
failure raises, so the exit code is non-zero and stderr says why.
"""
import argparse
import json

from cryptography.hazmat.primitives import serialization
from spiffe import JwtSvid, WorkloadApiClient


def public_der(key):
    return key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--audience", default="mayfly-interop")
    parser.add_argument("--timeout", type=float, default=20.0, help="deadline of each Workload API call (s)")
    args = parser.parse_args()
    audience = args.audience
    with WorkloadApiClient(default_timeout=args.timeout) as client:
        svid = client.fetch_x509_svid()
        svids = client.fetch_x509_svids()
        bundle = client.fetch_x509_bundles().get_bundle_for_trust_domain(svid.spiffe_id.trust_domain)
        if bundle is None:
            raise SystemExit(f"no X.509 bundle for {svid.spiffe_id.trust_domain}")

        jwt_svid = client.fetch_jwt_svid(audience={audience})
        jwt_bundles = client.fetch_jwt_bundles()
        jwt_bundle = jwt_bundles.get_bundle_for_trust_domain(jwt_svid.spiffe_id.trust_domain)
        if jwt_bundle is None:
            raise SystemExit(f"no JWT bundle for {jwt_svid.spiffe_id.trust_domain}")
        # Local verification with py-spiffe's parser and the bundle we were given...
        verified = JwtSvid.parse_and_validate(jwt_svid.token, jwt_bundle, {audience})
        # ...and the agent's own ValidateJWTSVID RPC.
        remote = client.validate_jwt_svid(jwt_svid.token, audience)

        print(json.dumps({
            "x509": {
                "spiffeId": str(svid.spiffe_id),
                "chainLength": len(svid.cert_chain),
                "keyMatchesCert": public_der(svid.private_key.public_key()) == public_der(svid.leaf.public_key()),
                "svidIds": [str(s.spiffe_id) for s in svids],
                "bundleAuthorities": len(bundle.x509_authorities),
            },
            "jwt": {
                "spiffeId": str(verified.spiffe_id),
                "audience": sorted(verified.audience),
                "expiry": verified.expiry,
                "validatedBy": str(remote.spiffe_id),
                "jwtAuthorities": len(jwt_bundle.jwt_authorities),
            },
        }))


if __name__ == "__main__":
    main()
