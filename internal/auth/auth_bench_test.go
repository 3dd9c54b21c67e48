package auth_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"crm/internal/auth"
)

var benchKey = []byte("bench-secret-key-0123456789abcdef-0123456789")

func benchToken(b *testing.B) string {
	b.Helper()
	tok, err := auth.Mint(benchKey, "11111111-1111-4111-8111-111111111111", []string{"admin"}, time.Hour, time.Now())
	if err != nil {
		b.Fatal(err)
	}
	return tok
}

// BenchmarkVerify measures the verification of an HS256 bearer token
// (signature, expiry, claims, roles to permissions) on every request: a
// token seen before (Verifier, Verifier-parallel: remembered), a token seen
// for the first time (Verifier-new), next to golang-jwt's own parse of the
// same token (the limit of a first check).
func BenchmarkVerify(b *testing.B) {
	tok := benchToken(b)
	v := auth.NewVerifier(benchKey, auth.Options{})
	b.Run("Verifier-new", func(b *testing.B) {
		// More distinct tokens than the verifier remembers, in turn: each
		// is checked in full.
		toks := make([]string, 4097)
		for i := range toks {
			t, err := auth.Mint(benchKey, fmt.Sprintf("11111111-1111-4111-8111-%012d", i), []string{"admin"}, time.Hour, time.Now())
			if err != nil {
				b.Fatal(err)
			}
			toks[i] = t
		}
		fresh := auth.NewVerifier(benchKey, auth.Options{})
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			if _, err := fresh.Verify(toks[i%len(toks)]); err != nil {
				b.Fatal(err)
			}
			i++
		}
	})
	b.Run("Verifier", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p, err := v.Verify(tok)
			if err != nil || !p.Can(auth.PermView) {
				b.Fatal(p, err)
			}
		}
	})
	b.Run("Verifier-parallel", func(b *testing.B) {
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if _, err := v.Verify(tok); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	b.Run("golang-jwt-parse", func(b *testing.B) {
		parser := jwt.NewParser(jwt.WithValidMethods([]string{"HS256"}), jwt.WithExpirationRequired())
		b.ReportAllocs()
		for b.Loop() {
			if _, err := parser.Parse(tok, func(*jwt.Token) (any, error) { return benchKey, nil }); err != nil {
				b.Fatal(err)
			}
		}
	})
}
