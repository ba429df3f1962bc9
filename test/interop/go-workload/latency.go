package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"sort"
	"time"

	"github.com/spiffe/go-spiffe/v2/svid/jwtsvid"
	"github.com/spiffe/go-spiffe/v2/workloadapi"
)

// runLatency times n FetchX509SVID and then n FetchJWTSVID calls on ONE reused go-spiffe
// client (after warmup calls of each), and prints the sorted per-call latencies in
// microseconds, with the number of X509-SVIDs the first response held:
// {"svids":N,"x509Micros":[...],"jwtMicros":[...]}. `npm run bench -- spire` runs it
// against a Mayfly agent and a SPIRE agent in the same run.
func runLatency(args []string) error {
	var c common
	fs := flag.NewFlagSet("latency", flag.ExitOnError)
	c.register(fs)
	n := fs.Int("n", 1000, "timed calls per RPC")
	warmup := fs.Int("warmup", 50, "untimed calls per RPC first")
	audience := fs.String("audience", "bench", "JWT-SVID audience")
	_ = fs.Parse(args)
	if *n < 0 || *warmup < 0 {
		return fmt.Errorf("-n and -warmup must not be negative")
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	client, err := workloadapi.New(ctx, c.clientOptions()...)
	if err != nil {
		return fmt.Errorf("workloadapi.New: %w", err)
	}
	defer client.Close()
	first, err := client.FetchX509Context(ctx)
	if err != nil {
		return fmt.Errorf("FetchX509Context: %w", err)
	}

	timed := func(call func() error) ([]int64, error) {
		for i := 0; i < *warmup; i++ {
			if err := call(); err != nil {
				return nil, err
			}
		}
		out := make([]int64, 0, *n)
		for i := 0; i < *n; i++ {
			start := time.Now()
			if err := call(); err != nil {
				return nil, err
			}
			out = append(out, time.Since(start).Microseconds())
		}
		sort.Slice(out, func(a, b int) bool { return out[a] < out[b] })
		return out, nil
	}
	x509Micros, err := timed(func() error {
		_, err := client.FetchX509SVID(ctx)
		if err != nil {
			return fmt.Errorf("FetchX509SVID: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	jwtMicros, err := timed(func() error {
		_, err := client.FetchJWTSVID(ctx, jwtsvid.Params{Audience: *audience})
		if err != nil {
			return fmt.Errorf("FetchJWTSVID: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	return json.NewEncoder(os.Stdout).Encode(map[string]any{"svids": len(first.SVIDs), "x509Micros": x509Micros, "jwtMicros": jwtMicros})
}
