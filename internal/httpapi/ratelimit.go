package httpapi

import (
	"math"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/gin-gonic/gin"
	"golang.org/x/time/rate"
)

// RateLimit limits requests per authenticated subject with a token bucket.
type RateLimit struct {
	PerSecond float64 // sustained requests per second; 0 disables limiting
	Burst     int     // bucket size (default: PerSecond rounded up)
}

// limiter keeps one token bucket per subject; buckets idle for a while are
// dropped so the map cannot grow without bound.
type limiter struct {
	cfg     RateLimit
	mu      sync.Mutex
	buckets map[string]*bucket
	sweep   time.Time
}

type bucket struct {
	l    *rate.Limiter
	seen time.Time
}

const bucketIdle = 10 * time.Minute

func newLimiter(cfg RateLimit) *limiter {
	if cfg.Burst <= 0 {
		cfg.Burst = int(math.Ceil(cfg.PerSecond))
	}
	return &limiter{cfg: cfg, buckets: map[string]*bucket{}, sweep: time.Now()}
}

// reserve takes a token for sub and returns how long the caller must wait
// before one is available (0 = allowed now).
func (l *limiter) reserve(sub string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.sweep) > bucketIdle {
		for k, b := range l.buckets {
			if now.Sub(b.seen) > bucketIdle {
				delete(l.buckets, k)
			}
		}
		l.sweep = now
	}
	b := l.buckets[sub]
	if b == nil {
		b = &bucket{l: rate.NewLimiter(rate.Limit(l.cfg.PerSecond), l.cfg.Burst)}
		l.buckets[sub] = b
	}
	b.seen = now
	if b.l.AllowN(now, 1) {
		return 0
	}
	r := b.l.ReserveN(now, 1)
	wait := r.DelayFrom(now)
	r.CancelAt(now) // only asking: give the token back
	return wait
}

// rateLimit answers 429 with Retry-After when the subject is over its rate.
func (a *api) rateLimit(l *limiter) gin.HandlerFunc {
	return func(c *gin.Context) {
		if wait := l.reserve(principal(c).Subject, time.Now()); wait > 0 {
			secs := int(math.Ceil(wait.Seconds()))
			c.Header("Retry-After", strconv.Itoa(max(secs, 1)))
			writeError(c, &badRequest{status: http.StatusTooManyRequests, title: "Too many requests",
				detail: "rate limit of " + strconv.FormatFloat(l.cfg.PerSecond, 'f', -1, 64) + " requests per second exceeded"})
			return
		}
		c.Next()
	}
}
