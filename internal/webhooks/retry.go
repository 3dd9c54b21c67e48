package webhooks

import (
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Schedule is the retry schedule of a failing delivery.
type Schedule struct {
	// Min is the delay after the first failure; it doubles with each
	// further one, up to Max.
	Min, Max time.Duration
	// For is how long an event may keep failing before the subscription is
	// disabled (at least a day in production).
	For time.Duration
}

// DefaultSchedule: 1 s doubling to 10 min, for 24 hours (about 150
// attempts).
var DefaultSchedule = Schedule{Min: time.Second, Max: 10 * time.Minute, For: 24 * time.Hour}

// Delay returns the wait before attempt n+1 after n failures (n ≥ 1):
// exponential with "equal jitter" (half fixed, half random, r in [0,1)),
// so that a receiver coming back is not hit by every sender at once.
func (s Schedule) Delay(n int, r float64) time.Duration {
	d := s.Min
	for i := 1; i < n && d < s.Max; i++ {
		d *= 2
	}
	d = min(d, s.Max)
	return d/2 + time.Duration(r*float64(d/2))
}

// retryAfter reads a Retry-After header (seconds or an HTTP date) of a 429
// or 503 response; ok is false without a usable one. It is capped at a
// day.
func retryAfter(h http.Header, now time.Time) (time.Duration, bool) {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	var d time.Duration
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0, false
		}
		d = time.Duration(min(secs, 86400)) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	} else {
		return 0, false
	}
	return max(0, min(d, 24*time.Hour)), true
}
