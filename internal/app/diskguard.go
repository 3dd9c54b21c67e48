package app

import (
	"context"
	"errors"
	"os"
	"time"
)

// guardJetStream watches the embedded nats-server for streams that failed to
// write to disk (the data directory is full or became read-only), every
// interval. nats-server keeps such a stream failing every write, even once
// space returns, until JetStream restarts. While a write error stands:
// commands fail at once with 503 (see writable), /readyz says why, and
// JetStream is restarted with growing pauses (1 s … 30 s) until its streams
// write again. Acknowledged events are synced before they are acknowledged,
// so a restart recovers all of them; a write that failed was never
// acknowledged (its client got a 503: absent, or present once if it reached
// the disk after all).
func (a *App) guardJetStream(ctx context.Context, interval time.Duration) {
	const maxPause = 30 * time.Second
	pause := interval
	var next time.Time // of the next restart
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		werr := a.ns.WriteError()
		if werr == nil {
			if a.writeErr.Swap(nil) != nil {
				a.log.Info("JetStream writes to the data directory again; commands accepted", "dataDir", a.Config.DataDir)
			}
			pause = interval
			continue
		}
		if a.writeErr.Swap(&werr) == nil {
			a.log.Error("JetStream cannot write to the data directory (disk full or read-only?): commands fail with 503 "+
				"until it can; queries keep working; JetStream restarts until its streams write again",
				"dataDir", a.Config.DataDir, "err", werr)
			next = time.Now().Add(pause)
		}
		if time.Now().Before(next) {
			continue
		}
		if err := probeWrite(a.Config.DataDir, 1<<20); err != nil {
			// Still full or read-only: restarting now would only fail the
			// next write again.
			next = time.Now().Add(pause)
			continue
		}
		if err := a.ns.RestartJetStream(); err != nil {
			a.log.Error("restart of JetStream failed; retrying", "err", err, "retryIn", pause.String())
		} else {
			a.log.Warn("JetStream restarted after a write error", "dataDir", a.Config.DataDir)
		}
		next = time.Now().Add(pause)
		pause = min(2*pause, maxPause)
	}
}

// probeWrite writes n bytes to a temporary file in dir, syncs and removes it:
// whether the directory has room (and is writable) right now.
func probeWrite(dir string, n int) (err error) {
	f, err := os.CreateTemp(dir, ".write-probe-*")
	if err != nil {
		return err
	}
	defer func() {
		err = errors.Join(err, f.Close(), os.Remove(f.Name()))
	}()
	if _, err := f.Write(make([]byte, n)); err != nil {
		return err
	}
	return f.Sync()
}

// writable is nil while the embedded server writes to disk, else its write
// error (eventstore.Config.Writable and /readyz).
func (a *App) writable() error {
	if p := a.writeErr.Load(); p != nil {
		return *p
	}
	return nil
}
