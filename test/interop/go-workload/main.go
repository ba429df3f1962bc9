// Command goworkload is a go-spiffe v2 Workload API client that Mayfly's interop tests run
// against a real Mayfly agent. Every identity, bundle and TLS decision here is made by
// go-spiffe's own code (workloadapi sources, x509svid/jwtsvid validation, spiffetls), so a
// passing test means an unmodified go-spiffe workload can live on a Mayfly agent.
//
// The agent's socket comes from SPIFFE_ENDPOINT_SOCKET (go-spiffe's own lookup) unless
// -addr is given. Results are JSON lines on stdout; any failure prints the error on stderr
// and exits non-zero.
//
//	goworkload x509
//	goworkload jwt -audience A
//	goworkload bundles -trust-domain TD
//	goworkload watch-rotation -count N
//	goworkload server -listen 127.0.0.1:0 -authorize spiffe://td/client
//	goworkload client -connect HOST:PORT -authorize spiffe://td/server -message M
//	goworkload latency -n N -warmup W -audience A   (bench: sorted per-call latencies)
//	goworkload crls   (the Workload API's crl fields, parsed with x509.ParseRevocationList)
package main

import (
	"bufio"
	"context"
	"crypto"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spiffe/go-spiffe/v2/spiffeid"
	"github.com/spiffe/go-spiffe/v2/spiffetls"
	"github.com/spiffe/go-spiffe/v2/spiffetls/tlsconfig"
	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/svid/x509svid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

type common struct {
	addr    string
	timeout time.Duration
}

func (c *common) register(fs *flag.FlagSet) {
	fs.StringVar(&c.addr, "addr", "", "Workload API address (unix:///path); SPIFFE_ENDPOINT_SOCKET when empty")
	fs.DurationVar(&c.timeout, "timeout", 20*time.Second, "overall deadline")
}

func (c *common) clientOptions() []workloadapi.ClientOption {
	if c.addr == "" {
		return nil
	}
	return []workloadapi.ClientOption{workloadapi.WithAddr(c.addr)}
}

func emit(v any) {
	b, err := json.Marshal(v)
	if err != nil {
		fail(err)
	}
	fmt.Println(string(b))
}

func fail(err error) {
	fmt.Fprintf(os.Stderr, "goworkload: %v\n", err)
	os.Exit(1)
}

func main() {
	if len(os.Args) < 2 {
		fail(errors.New("usage: goworkload x509|jwt|bundles|watch-rotation|server|client|latency [flags]"))
	}
	cmd, args := os.Args[1], os.Args[2:]
	var err error
	switch cmd {
	case "x509":
		err = runX509(args)
	case "crls":
		err = runCRLs(args)
	case "jwt":
		err = runJWT(args)
	case "bundles":
		err = runBundles(args)
	case "watch-rotation":
		err = runWatchRotation(args)
	case "server":
		err = runServer(args)
	case "client":
		err = runClient(args)
	case "latency":
		err = runLatency(args)
	default:
		err = fmt.Errorf("unknown subcommand %q", cmd)
	}
	if err != nil {
		fail(err)
	}
}

func serial(c *x509.Certificate) string { return c.SerialNumber.Text(16) }

// describeSVID verifies the SVID's chain against the bundle source with go-spiffe's
// x509svid.Verify and reports what go-spiffe saw.
func describeSVID(svid *x509svid.SVID, bundles *workloadapi.X509Source) (map[string]any, error) {
	leaf := svid.Certificates[0]
	verifiedID, chains, err := x509svid.Verify(svid.Certificates, bundles)
	if err != nil {
		return nil, fmt.Errorf("go-spiffe refused the X509-SVID chain for %s: %w", svid.ID, err)
	}
	if verifiedID != svid.ID {
		return nil, fmt.Errorf("verified ID %s differs from the SVID's ID %s", verifiedID, svid.ID)
	}
	type publicKeyEqual interface{ Equal(x crypto.PublicKey) bool }
	pub, ok := svid.PrivateKey.Public().(publicKeyEqual)
	keyMatches := ok && pub.Equal(leaf.PublicKey)
	return map[string]any{
		"spiffeId":    svid.ID.String(),
		"trustDomain": svid.ID.TrustDomain().Name(),
		"chainLength": len(svid.Certificates),
		"chains":      len(chains),
		"keyMatches":  keyMatches,
		"hint":        svid.Hint,
		"serial":      serial(leaf),
		"notBefore":   leaf.NotBefore.UTC().Format(time.RFC3339),
		"notAfter":    leaf.NotAfter.UTC().Format(time.RFC3339),
	}, nil
}

func runX509(args []string) error {
	var c common
	fs := flag.NewFlagSet("x509", flag.ExitOnError)
	c.register(fs)
	_ = fs.Parse(args)
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()

	source, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(c.clientOptions()...))
	if err != nil {
		return fmt.Errorf("NewX509Source: %w", err)
	}
	defer source.Close()
	svid, err := source.GetX509SVID()
	if err != nil {
		return fmt.Errorf("GetX509SVID: %w", err)
	}
	out, err := describeSVID(svid, source)
	if err != nil {
		return err
	}
	bundle, err := source.GetX509BundleForTrustDomain(svid.ID.TrustDomain())
	if err != nil {
		return fmt.Errorf("GetX509BundleForTrustDomain(%s): %w", svid.ID.TrustDomain(), err)
	}
	out["bundleAuthorities"] = len(bundle.X509Authorities())

	// Every SVID the agent sent, not just the default one, straight from the client.
	client, err := workloadapi.New(ctx, c.clientOptions()...)
	if err != nil {
		return fmt.Errorf("workloadapi.New: %w", err)
	}
	defer client.Close()
	svids, err := client.FetchX509SVIDs(ctx)
	if err != nil {
		return fmt.Errorf("FetchX509SVIDs: %w", err)
	}
	ids := make([]string, 0, len(svids))
	for _, s := range svids {
		ids = append(ids, s.ID.String())
	}
	out["svidIds"] = ids
	emit(out)
	return nil
}

func runJWT(args []string) error {
	var c common
	fs := flag.NewFlagSet("jwt", flag.ExitOnError)
	c.register(fs)
	audience := fs.String("audience", "", "audience to request and validate")
	_ = fs.Parse(args)
	if *audience == "" {
		return errors.New("jwt: -audience is required")
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()

	source, err := workloadapi.NewJWTSource(ctx, workloadapi.WithClientOptions(c.clientOptions()...))
	if err != nil {
		return fmt.Errorf("NewJWTSource: %w", err)
	}
	defer source.Close()
	svid, err := source.FetchJWTSVID(ctx, jwtsvid.Params{Audience: *audience})
	if err != nil {
		return fmt.Errorf("FetchJWTSVID: %w", err)
	}
	token := svid.Marshal()
	// Local validation: signature against the JWT bundle the same source streamed.
	validated, err := jwtsvid.ParseAndValidate(token, source, []string{*audience})
	if err != nil {
		return fmt.Errorf("jwtsvid.ParseAndValidate refused the JWT-SVID: %w", err)
	}
	// Remote validation: the agent's ValidateJWTSVID RPC through go-spiffe's client.
	remote, err := workloadapi.ValidateJWTSVID(ctx, token, *audience, c.clientOptions()...)
	if err != nil {
		return fmt.Errorf("ValidateJWTSVID: %w", err)
	}
	// A token for a different audience must be refused by go-spiffe's validator.
	_, wrongAudienceErr := jwtsvid.ParseAndValidate(token, source, []string{*audience + "-other"})
	emit(map[string]any{
		"spiffeId":              validated.ID.String(),
		"audience":              validated.Audience,
		"expiry":                validated.Expiry.UTC().Format(time.RFC3339),
		"validatedByAgent":      remote.ID.String(),
		"wrongAudienceRejected": wrongAudienceErr != nil,
	})
	return nil
}

func runBundles(args []string) error {
	var c common
	fs := flag.NewFlagSet("bundles", flag.ExitOnError)
	c.register(fs)
	tdName := fs.String("trust-domain", "", "trust domain whose bundle to print")
	_ = fs.Parse(args)
	td, err := spiffeid.TrustDomainFromString(*tdName)
	if err != nil {
		return fmt.Errorf("bundles: -trust-domain: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()

	source, err := workloadapi.NewBundleSource(ctx, workloadapi.WithClientOptions(c.clientOptions()...))
	if err != nil {
		return fmt.Errorf("NewBundleSource: %w", err)
	}
	defer source.Close()
	bundle, err := source.GetBundleForTrustDomain(td)
	if err != nil {
		return fmt.Errorf("GetBundleForTrustDomain(%s): %w", td, err)
	}
	keyIDs := make([]string, 0)
	for kid := range bundle.JWTAuthorities() {
		keyIDs = append(keyIDs, kid)
	}
	sort.Strings(keyIDs)
	emit(map[string]any{
		"trustDomain":     bundle.TrustDomain().Name(),
		"x509Authorities": len(bundle.X509Authorities()),
		"jwtAuthorities":  keyIDs,
		"selfSignedRoots": countSelfSigned(bundle.X509Authorities()),
	})
	return nil
}

func countSelfSigned(certs []*x509.Certificate) int {
	n := 0
	for _, c := range certs {
		if c.CheckSignatureFrom(c) == nil {
			n++
		}
	}
	return n
}

func runWatchRotation(args []string) error {
	var c common
	fs := flag.NewFlagSet("watch-rotation", flag.ExitOnError)
	c.register(fs)
	count := fs.Int("count", 2, "distinct SVIDs to observe before succeeding")
	_ = fs.Parse(args)
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()

	// One source for the whole run: rotation must arrive on the open stream.
	source, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(c.clientOptions()...))
	if err != nil {
		return fmt.Errorf("NewX509Source: %w", err)
	}
	defer source.Close()
	seen := map[string]bool{}
	var svids []map[string]any
	for {
		svid, err := source.GetX509SVID()
		if err != nil {
			return fmt.Errorf("GetX509SVID: %w", err)
		}
		leaf := svid.Certificates[0]
		if !seen[serial(leaf)] {
			seen[serial(leaf)] = true
			d, err := describeSVID(svid, source)
			if err != nil {
				return err
			}
			svids = append(svids, d)
			// Progress lines let a test see rotation as it happens.
			emit(map[string]any{"event": "svid", "svid": d})
		}
		if len(seen) >= *count {
			break
		}
		select {
		case <-source.Updated():
		case <-ctx.Done():
			return fmt.Errorf("saw %d distinct X509-SVIDs, wanted %d: %w", len(seen), *count, ctx.Err())
		}
	}
	emit(map[string]any{"event": "done", "distinct": len(seen), "svids": svids})
	return nil
}

// runServer accepts spiffetls connections until stdin closes; each connection's peer ID
// and first line are reported, and the line is echoed back with the server's own ID.
func runServer(args []string) error {
	var c common
	fs := flag.NewFlagSet("server", flag.ExitOnError)
	c.register(fs)
	listen := fs.String("listen", "127.0.0.1:0", "TCP address to listen on")
	authorize := fs.String("authorize", "", "SPIFFE ID a client must present")
	memberOf := fs.String("memberOf", "", "trust domain a client must belong to (instead of -authorize)")
	_ = fs.Parse(args)
	authorizer, err := authorizerFrom(*authorize, *memberOf)
	if err != nil {
		return fmt.Errorf("server: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	source, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(c.clientOptions()...))
	cancel()
	if err != nil {
		return fmt.Errorf("NewX509Source: %w", err)
	}
	defer source.Close()
	own, err := source.GetX509SVID()
	if err != nil {
		return fmt.Errorf("GetX509SVID: %w", err)
	}
	ln, err := spiffetls.ListenWithMode(context.Background(), "tcp", *listen,
		spiffetls.MTLSServerWithSource(authorizer, source))
	if err != nil {
		return fmt.Errorf("spiffetls.ListenWithMode: %w", err)
	}
	defer ln.Close()
	emit(map[string]any{"event": "listening", "addr": ln.Addr().String(), "spiffeId": own.ID.String()})

	go func() {
		// The parent closes stdin to stop the server.
		_, _ = bufio.NewReader(os.Stdin).ReadString(0)
		ln.Close()
	}()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("accept: %w", err)
		}
		go serve(conn, own.ID)
	}
}

func serve(conn net.Conn, own spiffeid.ID) {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
	peer, err := spiffetls.PeerIDFromConn(conn)
	if err != nil {
		emit(map[string]any{"event": "rejected", "error": err.Error()})
		return
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		emit(map[string]any{"event": "read-error", "peerId": peer.String(), "error": err.Error()})
		return
	}
	msg := strings.TrimSuffix(line, "\n")
	if _, err := fmt.Fprintf(conn, "%s heard from %s: %s\n", own, peer, msg); err != nil {
		emit(map[string]any{"event": "write-error", "peerId": peer.String(), "error": err.Error()})
		return
	}
	emit(map[string]any{"event": "served", "peerId": peer.String(), "message": msg})
}

func runClient(args []string) error {
	var c common
	fs := flag.NewFlagSet("client", flag.ExitOnError)
	c.register(fs)
	connect := fs.String("connect", "", "server address HOST:PORT")
	authorize := fs.String("authorize", "", "SPIFFE ID the server must present")
	memberOf := fs.String("memberOf", "", "trust domain the server must belong to (instead of -authorize)")
	message := fs.String("message", "hello", "line to send")
	_ = fs.Parse(args)
	authorizer, err := authorizerFrom(*authorize, *memberOf)
	if err != nil {
		return fmt.Errorf("client: %w", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	source, err := workloadapi.NewX509Source(ctx, workloadapi.WithClientOptions(c.clientOptions()...))
	if err != nil {
		return fmt.Errorf("NewX509Source: %w", err)
	}
	defer source.Close()
	own, err := source.GetX509SVID()
	if err != nil {
		return fmt.Errorf("GetX509SVID: %w", err)
	}
	conn, err := spiffetls.DialWithMode(ctx, "tcp", *connect,
		spiffetls.MTLSClientWithSource(authorizer, source))
	if err != nil {
		return fmt.Errorf("spiffetls.DialWithMode: %w", err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
	peer, err := spiffetls.PeerIDFromConn(conn)
	if err != nil {
		return fmt.Errorf("PeerIDFromConn: %w", err)
	}
	if _, err := fmt.Fprintf(conn, "%s\n", *message); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	reply, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read reply: %w", err)
	}
	emit(map[string]any{
		"spiffeId": own.ID.String(),
		"serverId": peer.String(),
		"reply":    strings.TrimSuffix(reply, "\n"),
	})
	return nil
}

// authorizerFrom is tlsconfig.AuthorizeID for -authorize, or tlsconfig.AuthorizeMemberOf for
// -memberOf (exactly one of them).
func authorizerFrom(authorize, memberOf string) (tlsconfig.Authorizer, error) {
	if (authorize == "") == (memberOf == "") {
		return nil, errors.New("give exactly one of -authorize and -memberOf")
	}
	if memberOf != "" {
		td, err := spiffeid.TrustDomainFromString(memberOf)
		if err != nil {
			return nil, fmt.Errorf("-memberOf: %w", err)
		}
		return tlsconfig.AuthorizeMemberOf(td), nil
	}
	id, err := spiffeid.FromString(authorize)
	if err != nil {
		return nil, fmt.Errorf("-authorize: %w", err)
	}
	return tlsconfig.AuthorizeID(id), nil
}
