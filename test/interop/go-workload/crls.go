package main

// goworkload crls: the CRLs a Mayfly agent serves in the Workload API's crl fields
// (X509SVIDResponse.crl and X509BundlesResponse.crl), read with go-spiffe's own generated
// Workload API client (go-spiffe's sources do not expose them: it does not enforce CRLs)
// and parsed with Go's x509.ParseRevocationList. Prints one JSON line.

import (
	"context"
	"crypto/x509"
	"encoding/hex"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/spiffe/go-spiffe/v2/proto/spiffe/workload"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
)

type crlEntry struct {
	Serial string `json:"serial"`
	Reason int    `json:"reason"`
}

type crlInfo struct {
	Issuer     string     `json:"issuer"`
	Number     string     `json:"number"`
	AKI        string     `json:"authorityKeyId"`
	ThisUpdate string     `json:"thisUpdate"`
	NextUpdate string     `json:"nextUpdate"`
	Revoked    []crlEntry `json:"revoked"`
}

func parseCRLs(ders [][]byte) ([]crlInfo, error) {
	out := make([]crlInfo, 0, len(ders))
	for i, der := range ders {
		rl, err := x509.ParseRevocationList(der)
		if err != nil {
			return nil, fmt.Errorf("x509.ParseRevocationList(crl %d): %w", i, err)
		}
		info := crlInfo{
			Issuer:     rl.Issuer.String(),
			AKI:        hex.EncodeToString(rl.AuthorityKeyId),
			ThisUpdate: rl.ThisUpdate.UTC().Format("2006-01-02T15:04:05Z"),
			NextUpdate: rl.NextUpdate.UTC().Format("2006-01-02T15:04:05Z"),
			Revoked:    []crlEntry{},
		}
		if rl.Number != nil {
			info.Number = rl.Number.String()
		}
		for _, e := range rl.RevokedCertificateEntries {
			info.Revoked = append(info.Revoked, crlEntry{Serial: hex.EncodeToString(e.SerialNumber.Bytes()), Reason: e.ReasonCode})
		}
		out = append(out, info)
	}
	return out, nil
}

func runCRLs(args []string) error {
	var c common
	fs := flag.NewFlagSet("crls", flag.ExitOnError)
	c.register(fs)
	_ = fs.Parse(args)
	addr := c.addr
	if addr == "" {
		addr = os.Getenv("SPIFFE_ENDPOINT_SOCKET")
	}
	if !strings.HasPrefix(addr, "unix://") {
		return fmt.Errorf("crls: need a unix:// Workload API address, got %q", addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return fmt.Errorf("crls: dial: %w", err)
	}
	defer conn.Close()
	client := workload.NewSpiffeWorkloadAPIClient(conn)
	ctx = metadata.AppendToOutgoingContext(ctx, "workload.spiffe.io", "true")
	svids, err := client.FetchX509SVID(ctx, &workload.X509SVIDRequest{})
	if err != nil {
		return fmt.Errorf("FetchX509SVID: %w", err)
	}
	svidResp, err := svids.Recv()
	if err != nil {
		return fmt.Errorf("FetchX509SVID: %w", err)
	}
	bundles, err := client.FetchX509Bundles(ctx, &workload.X509BundlesRequest{})
	if err != nil {
		return fmt.Errorf("FetchX509Bundles: %w", err)
	}
	bundleResp, err := bundles.Recv()
	if err != nil {
		return fmt.Errorf("FetchX509Bundles: %w", err)
	}
	fromSvid, err := parseCRLs(svidResp.GetCrl())
	if err != nil {
		return err
	}
	fromBundles, err := parseCRLs(bundleResp.GetCrl())
	if err != nil {
		return err
	}
	emit(map[string]any{"svidCrls": fromSvid, "bundleCrls": fromBundles})
	return nil
}
