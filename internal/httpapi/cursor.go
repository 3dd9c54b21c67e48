package httpapi

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"strconv"
	"strings"
	"time"

	"crm/internal/readmodel"
)

// A page cursor (list and search, ?after=) is the position of a page's
// last customer, bound to the query it was made for, and signed: a cursor
// of another query, or one changed by hand, is refused (400) instead of
// silently paging something else. Its form: base64url(JSON) "."
// base64url(HMAC-SHA256[:16]) with the API's cursor key, which every
// replica derives from SECRET_KEY, so a cursor works on any of them and
// across restarts.
type pageCursor struct {
	V    int    `json:"v"`
	Bind string `json:"b"` // hash of the query (binding)
	S    int    `json:"s,omitempty"`
	T    int64  `json:"t,omitempty"` // Unix nanoseconds
	N    string `json:"n,omitempty"`
	C    int64  `json:"c"`
	I    string `json:"i,omitempty"` // an id (contacts' tie-breaker)
}

// CursorKey derives the page cursors' signing key from the service's
// secret (nil: a random key, cursors then valid in this process only).
func CursorKey(secret []byte) []byte {
	if len(secret) == 0 {
		k := make([]byte, 32)
		_, _ = rand.Read(k)
		return k
	}
	m := hmac.New(sha256.New, secret)
	m.Write([]byte("crm page cursor v1"))
	return m.Sum(nil)
}

// binding names what a cursor is valid for: the endpoint, the filters, the
// order and the search text (not the page size).
func binding(q readmodel.Query, search bool) string {
	parts := []string{"list", q.Sort, strconv.FormatBool(q.Desc), q.Status, q.Type, q.Tag, q.CreatedBy,
		strconv.FormatBool(q.Deleted), ""}
	if search {
		parts[0], parts[1], parts[2], parts[8] = "search", "", "", q.Text
	}
	return bindingOf(parts...)
}

// bindingOf hashes the parts of a query that a cursor is bound to.
func bindingOf(parts ...string) string {
	sum := sha256.Sum256([]byte(strings.Join(parts, "\x00")))
	return base64.RawURLEncoding.EncodeToString(sum[:12])
}

func (a *api) encodeCursor(q readmodel.Query, search bool, p readmodel.Position) string {
	return a.signCursor(pageCursor{V: 1, Bind: binding(q, search), S: p.Score, N: p.Name, C: p.Code, T: unixNanos(p.Time)})
}

// signCursor returns the signed form of c.
func (a *api) signCursor(c pageCursor) string {
	body, _ := json.Marshal(c)
	payload := base64.RawURLEncoding.EncodeToString(body)
	return payload + "." + a.cursorMAC(payload)
}

// unixNanos is t in Unix nanoseconds, 0 for the zero time.
func unixNanos(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

func (a *api) cursorMAC(payload string) string {
	m := hmac.New(sha256.New, a.cursorKey)
	m.Write([]byte(payload))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:16])
}

// decodeCursor returns the position of a cursor made for q, or a message
// saying why it is refused.
func (a *api) decodeCursor(s string, q readmodel.Query, search bool) (readmodel.Position, string) {
	c, why := a.openCursor(s, binding(q, search))
	if why != "" {
		return readmodel.Position{}, why
	}
	p := readmodel.Position{Score: c.S, Name: c.N, Code: c.C}
	if c.T != 0 {
		p.Time = time.Unix(0, c.T).UTC()
	}
	return p, ""
}

// openCursor checks a cursor's signature and binding and returns it, or
// a message saying why it is refused.
func (a *api) openCursor(s, bind string) (pageCursor, string) {
	payload, mac, ok := strings.Cut(s, ".")
	if !ok || !hmac.Equal([]byte(mac), []byte(a.cursorMAC(payload))) {
		return pageCursor{}, "is not a cursor of this API (take meta.next of a page)"
	}
	body, err := base64.RawURLEncoding.DecodeString(payload)
	var c pageCursor
	if err != nil || json.Unmarshal(body, &c) != nil || c.V != 1 {
		return pageCursor{}, "is not a cursor of this API (take meta.next of a page)"
	}
	if c.Bind != bind {
		return pageCursor{}, "was made for another query: keep the filters, sort and q of the page it came from"
	}
	return c, ""
}
