package events

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Claims: a value that must be unique across customers (the normalised
// email of upserts, next external ids, unique custom fields) is claimed by
// a message on its own subject of the customer stream,
// crm.claims.<kind>.<hash of the value>, appended in the same atomic batch
// as the customer event that uses it, expecting the subject's last sequence
// (0: never claimed), so that two writers can never both claim it. A claim
// is an internal record of the write side, not an event of the public
// contract: consumers of customer events subscribe to crm.customers.>; the
// projector skips claims.
const ClaimsPrefix = subjectRoot + ".claims"

// ClaimSubject returns the subject of the claim of value (already
// normalised) of a kind ("email", …). The value is hashed: subjects show
// in logs and monitoring, values do not belong there.
func ClaimSubject(kind, value string) string {
	sum := sha256.Sum256([]byte(kind + "\x00" + value))
	return ClaimsPrefix + "." + kind + "." + hex.EncodeToString(sum[:16])
}

// IsClaimSubject reports whether subject is a claim's.
func IsClaimSubject(subject string) bool { return strings.HasPrefix(subject, ClaimsPrefix+".") }

// Claim is a claim to append with a command's events: Subject names the
// value (ClaimSubject), CustomerID its holder; ExpectedSeq is the subject's
// last sequence as read before (0: never claimed).
type Claim struct {
	Subject     string
	CustomerID  string
	ExpectedSeq uint64
}

// ClaimHolder is who holds a claim subject, and the subject's last
// sequence.
type ClaimHolder struct {
	CustomerID string
	Seq        uint64
}
