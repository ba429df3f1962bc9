// Command judge answers with go-spiffe's verdicts on artefacts that Mayfly produced.
//
// Protocol: one JSON request per line on stdin, one JSON response per line on stdout,
// in order; exits at EOF. A test keeps one process alive for many requests. The "op"
// field picks the check; see test/interop/go-spiffe/judge.ts for the TypeScript side.
package main

import (
	"bufio"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spiffe/go-spiffe/v2/bundle/jwtbundle"
	"github.com/spiffe/go-spiffe/v2/bundle/spiffebundle"
	"github.com/spiffe/go-spiffe/v2/bundle/x509bundle"
	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
)

type request struct {
	Op          string   `json:"op"`
	IDs         []string `json:"ids"`
	Names       []string `json:"names"`
	SVID        string   `json:"svid"`
	Key         string   `json:"key"`
	Authorities string   `json:"authorities"`
	Now         string   `json:"now"` // optional RFC 3339 verification time for "x509"
	Token       string   `json:"token"`
	Audience    []string `json:"audience"`
	TrustDomain string   `json:"trustDomain"`
	Bundle      string   `json:"bundle"`
	JWKS        string   `json:"jwks"`
}

// obj is a JSON object answer; every answer is one of these.
type obj = map[string]any

func fail(stage string, err error) obj {
	out := obj{"ok": false, "error": err.Error()}
	if stage != "" {
		out["stage"] = stage
	}
	return out
}

func ids(in []string) obj {
	results := make([]obj, 0, len(in))
	for _, s := range in {
		id, err := spiffeid.FromString(s)
		if err != nil {
			results = append(results, fail("", err))
			continue
		}
		results = append(results, obj{"ok": true, "id": id.String(), "trustDomain": id.TrustDomain().Name(), "path": id.Path()})
	}
	return obj{"results": results}
}

func trustDomains(in []string) obj {
	results := make([]obj, 0, len(in))
	for _, s := range in {
		td, err := spiffeid.TrustDomainFromString(s)
		if err != nil {
			results = append(results, fail("", err))
			continue
		}
		results = append(results, obj{"ok": true, "name": td.Name(), "id": td.IDString()})
	}
	return obj{"results": results}
}

// certs decodes base64 concatenated DER certificates.
func certs(b64 string) ([]*x509.Certificate, error) {
	der, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return nil, err
	}
	return x509.ParseCertificates(der)
}

func x509Check(r request) obj {
	td, err := spiffeid.TrustDomainFromString(r.TrustDomain)
	if err != nil {
		return fail("bundle", err)
	}
	roots, err := certs(r.Authorities)
	if err != nil {
		return fail("bundle", err)
	}
	var chain []*x509.Certificate
	if r.Key != "" {
		// The Workload API path: certificates and PKCS#8 key exactly as a workload gets them.
		der, err1 := base64.StdEncoding.DecodeString(r.SVID)
		key, err2 := base64.StdEncoding.DecodeString(r.Key)
		if err := errors.Join(err1, err2); err != nil {
			return fail("parse", err)
		}
		svid, err := x509svid.ParseRaw(der, key)
		if err != nil {
			return fail("parse", err)
		}
		chain = svid.Certificates
	} else if chain, err = certs(r.SVID); err != nil {
		return fail("parse", err)
	}
	var opts []x509svid.VerifyOption
	if r.Now != "" {
		now, err := time.Parse(time.RFC3339, r.Now)
		if err != nil {
			return fail("verify", err)
		}
		opts = append(opts, x509svid.WithTime(now))
	}
	id, chains, err := x509svid.Verify(chain, x509bundle.FromX509Authorities(td, roots), opts...)
	if err != nil {
		return fail("verify", err)
	}
	return obj{"ok": true, "spiffeId": id.String(), "chains": len(chains)}
}

func jwtCheck(r request) obj {
	td, err := spiffeid.TrustDomainFromString(r.TrustDomain)
	if err != nil {
		return fail("bundle", err)
	}
	bundle, err := spiffebundle.Parse(td, []byte(r.Bundle))
	if err != nil {
		return fail("bundle", err)
	}
	svid, err := jwtsvid.ParseAndValidate(r.Token, bundle.JWTBundle(), r.Audience)
	if err != nil {
		return fail("validate", err)
	}
	return obj{"ok": true, "spiffeId": svid.ID.String(), "audience": svid.Audience, "expiry": svid.Expiry.UTC().Format(time.RFC3339)}
}

func bundleCheck(r request) obj {
	td, err := spiffeid.TrustDomainFromString(r.TrustDomain)
	if err != nil {
		return fail("", err)
	}
	b, err := spiffebundle.Parse(td, []byte(r.Bundle))
	if err != nil {
		return fail("", err)
	}
	out := obj{"ok": true, "x509Authorities": len(b.X509Authorities()), "jwtAuthorities": kids(b.JWTAuthorities())}
	if seq, ok := b.SequenceNumber(); ok {
		out["sequence"] = seq
	}
	if hint, ok := b.RefreshHint(); ok {
		out["refreshHintSeconds"] = int64(hint / time.Second)
	}
	return out
}

func jwtBundleCheck(r request) obj {
	td, err := spiffeid.TrustDomainFromString(r.TrustDomain)
	if err != nil {
		return fail("", err)
	}
	b, err := jwtbundle.Parse(td, []byte(r.JWKS))
	if err != nil {
		return fail("", err)
	}
	return obj{"ok": true, "jwtAuthorities": kids(b.JWTAuthorities())}
}

func kids[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for kid := range m {
		out = append(out, kid)
	}
	return out
}

func answer(line []byte) obj {
	var r request
	if err := json.Unmarshal(line, &r); err != nil {
		return fail("request", err)
	}
	switch r.Op {
	case "ids":
		return ids(r.IDs)
	case "trustDomains":
		return trustDomains(r.Names)
	case "x509":
		return x509Check(r)
	case "jwt":
		return jwtCheck(r)
	case "bundle":
		return bundleCheck(r)
	case "jwtBundle":
		return jwtBundleCheck(r)
	default:
		return fail("request", fmt.Errorf("unknown op %q", r.Op))
	}
}

func main() {
	in := bufio.NewReader(os.Stdin) // ReadBytes has no line-length limit, unlike Scanner
	out := json.NewEncoder(os.Stdout)
	for {
		line, err := in.ReadBytes('\n')
		if len(line) > 0 {
			if encErr := out.Encode(answer(line)); encErr != nil {
				fmt.Fprintln(os.Stderr, "judge: cannot write answer:", encErr)
				os.Exit(1)
			}
		}
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "judge: cannot read request:", err)
			os.Exit(1)
		}
	}
}
