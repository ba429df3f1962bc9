"""Verifies a JWT-SVID as a stock OIDC relying party does, given only the issuer URL.

Usage: oidc_verify.py ISSUER AUDIENCE  (the token on stdin)

Reads ISSUER/.well-known/openid-configuration, requires its `issuer` to equal ISSUER
(OpenID Connect Discovery 1.0, section 4.3), then lets PyJWT's PyJWKClient fetch the
`jwks_uri` the document names and pick the key by the token's `kid`; jwt.decode checks the
signature, `exp`, `aud` and `iss`. Prints the claims as JSON; exits 1 with the reason.
"""
import json
import sys
import urllib.request

import jwt


def main() -> int:
    issuer, audience = sys.argv[1], sys.argv[2]
    token = sys.stdin.read().strip()
    with urllib.request.urlopen(issuer + "/.well-known/openid-configuration", timeout=10) as r:
        doc = json.load(r)
    if doc.get("issuer") != issuer:
        print(f"discovery document issuer {doc.get('issuer')!r} is not {issuer!r}", file=sys.stderr)
        return 1
    client = jwt.PyJWKClient(doc["jwks_uri"], cache_keys=False, cache_jwk_set=False)
    try:
        key = client.get_signing_key_from_jwt(token)
        claims = jwt.decode(
            token,
            key.key,
            algorithms=doc["id_token_signing_alg_values_supported"],
            audience=audience,
            issuer=issuer,
            options={"require": ["exp", "iat", "sub", "aud", "iss"]},
        )
    except jwt.PyJWTError as e:
        print(f"{type(e).__name__}: {e}", file=sys.stderr)
        return 1
    print(json.dumps({"claims": claims, "kid": key.key_id, "jwks_uri": doc["jwks_uri"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
