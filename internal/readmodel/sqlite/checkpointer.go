package sqlite

import (
	"context"
	"database/sql"
	"time"
)

// The writer's own automatic checkpoint starts only past walBackstop pages
// of write-ahead log (32 MiB with 2 KiB pages): normally the checkpointer
// has copied the log back long before. It bounds the log should the
// checkpointer fall behind or fail.
const walBackstop = 16384

// checkpointEvery is the least time between two checkpoints, so that a load
// of small commits (a create each) does not cost a checkpoint, with its two
// syncs, per commit. Not longer: each checkpoint ends with a sync of the
// database file, and at 250 ms that sync was big enough to hold up
// JetStream's synced appends behind it on the disk (create p99 at 1M
// customers 104-150 ms -> 186-289 ms; at 50 ms 137-148 ms).
const checkpointEvery = 50 * time.Millisecond

// checkpointer copies the write-ahead log back into the database file on a
// connection of its own, after commits, so that the writer does not: with
// SQLite's automatic checkpoint the commit that crosses the threshold copies
// the log itself, page by page, while the projector waits on it. At
// 1,000,000 customers a commit of 1,000 created customers writes about 27
// MiB of log (each insert dirties some 13 pages of the table, its indexes and
// the search index), and copying it back was 13% of the projector's CPU;
// on its own connection it runs on the other core (docs/PERFORMANCE.md,
// "Checkpoints off the commit path").
//
// Its checkpoints are PASSIVE: they never wait for the writer or the
// readers, copy what no reader still needs, and are safe to stop at any
// point (SQLite's checkpoint is crash-safe; the log stays the truth until
// copied).
type checkpointer struct {
	db   *sql.DB
	kick chan struct{}
	stop chan struct{}
	done chan struct{}
}

func startCheckpointer(abs string) (*checkpointer, error) {
	db, err := openPool(abs, 1, "_pragma=busy_timeout(10000)", "_pragma=synchronous(NORMAL)")
	if err != nil {
		return nil, err
	}
	c := &checkpointer{db: db, kick: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
	go c.run()
	return c, nil
}

// committed tells the checkpointer that the log has grown; it never blocks.
func (c *checkpointer) committed() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

func (c *checkpointer) run() {
	defer close(c.done)
	for {
		select {
		case <-c.stop:
			return
		case <-c.kick:
		}
		// A failed checkpoint is left to the next one, and to the
		// writer's backstop: the log is still the truth until copied.
		var busy, frames, copied int64
		_ = c.db.QueryRowContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)").Scan(&busy, &frames, &copied)
		select {
		case <-c.stop:
			return
		case <-time.After(checkpointEvery):
		}
	}
}

func (c *checkpointer) close() error {
	close(c.stop)
	<-c.done
	return c.db.Close()
}
