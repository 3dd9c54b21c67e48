// Package sqlite is the embedded read model: a readmodel.Store in one SQLite
// database file (pure-Go driver modernc.org/sqlite, so binaries stay static),
// with an index for every filter and sort of List and an FTS5 index for
// Search.
//
// One writer connection serialises the projector's transactions; a pool of
// query-only connections serves reads, which in WAL mode never wait for the
// writer and always see a committed state.
package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"

	msqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"crm/internal/fault"
	"crm/internal/readmodel"
)

// schemaVersion is stored in PRAGMA user_version. A database of another
// version is emptied and recreated by Open (see migrate).
const schemaVersion = 12

// readers is the size of the query-only connection pool.
const readers = 6

// errRebuildDone is returned by a Rebuild used after Swap or Abort.
var errRebuildDone = errors.New("readmodel/sqlite: rebuild already swapped or aborted")

// Store is the SQLite read model. It is safe for concurrent use.
type Store struct {
	w      *sql.DB // the single writer connection
	r      *sql.DB // query-only readers
	ckpt   *checkpointer
	closed atomic.Bool

	fewMatches int64 // see defaultFewMatches; tests lower it
	searchFew  int64 // see defaultSearchFew; tests lower it
	// searchChunk is the least number of a tier's candidates read at once
	// (64; tests lower it).
	searchChunk int64

	stmts stmtCache // the readers' prepared statements
}

var _ readmodel.Store = (*Store)(nil)

// Open opens (creating if needed) the read model in the SQLite database file
// at path. A database written by another schema version of this package is
// emptied, with its checkpoint back at 0, so that the projector rebuilds it
// from the stream. It returns an error wrapping readmodel.ErrUnavailable
// when the database cannot be opened.
func Open(ctx context.Context, path string) (*Store, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("%w: sqlite open %q: %w", readmodel.ErrUnavailable, path, err)
	}
	// synchronous=NORMAL in WAL mode can lose the last transactions on an
	// OS crash (never corrupt the file). That is acceptable only because
	// the stream is the source of truth and the checkpoint is committed in
	// the same transaction as the documents: a lost tail is simply
	// projected again from the stream.
	//
	// The writer's page cache is 16 MiB: SQLite walks the whole page cache
	// at the end of every write transaction (pcache1Truncate), so a bigger
	// cache costs every commit; with 64 MiB that walk was 12% of the
	// service's CPU under a create load, and 16 MiB made both creates and
	// catch-up faster (docs/PERFORMANCE.md).
	w, err := openPool(abs, 1, "_txlock=immediate", "_pragma=busy_timeout(10000)",
		"_pragma=page_size(2048)", "_pragma=synchronous(NORMAL)", "_pragma=cache_size(-16384)",
		"_pragma=temp_store(MEMORY)", "_pragma=wal_autocheckpoint("+strconv.Itoa(walBackstop)+")")
	if err != nil {
		return nil, err
	}
	s := &Store{w: w, fewMatches: defaultFewMatches, searchFew: defaultSearchFew, searchChunk: 64}
	if err := s.migrate(ctx); err != nil {
		w.Close()
		return nil, err
	}
	if _, err := w.ExecContext(ctx, leaseTable); err != nil {
		w.Close()
		return nil, s.fail("open", err)
	}
	r, err := openPool(abs, readers, "_pragma=busy_timeout(10000)", "_pragma=query_only(1)",
		"_pragma=cache_size(-16000)", "_pragma=temp_store(MEMORY)", "_pragma=mmap_size(268435456)")
	if err != nil {
		w.Close()
		return nil, err
	}
	s.r = r
	if s.ckpt, err = startCheckpointer(abs); err != nil {
		s.Close()
		return nil, err
	}
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// openPool opens a pool of conns connections to the database file at the
// absolute path abs with the driver's parameters, kept open for the store's
// life.
func openPool(abs string, conns int, params ...string) (*sql.DB, error) {
	db, err := sql.Open("sqlite", dsn(abs, params...))
	if err != nil {
		return nil, fmt.Errorf("%w: sqlite open: %w", readmodel.ErrUnavailable, err)
	}
	db.SetMaxOpenConns(conns)
	db.SetMaxIdleConns(conns)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	return db, nil
}

// dsn returns the driver's name of the database file at the absolute path
// abs: a file: URI (so any path is escaped) with the driver's parameters.
func dsn(abs string, params ...string) string {
	u := url.URL{Scheme: "file", Path: filepath.ToSlash(abs)}
	s := u.String()
	for i, p := range params {
		if i == 0 {
			s += "?"
		} else {
			s += "&"
		}
		s += p
	}
	return s
}

// migrate switches the database to WAL mode and creates the live tables of
// an empty database, or of one of another schema version after dropping all
// its tables: the read model is derived data, and re-projecting the stream
// is its migration.
//
// The page size is 2 KiB (set on the connection before the first table
// exists): the pure-Go allocator behind modernc.org/sqlite maps and unmaps
// every allocation over 16 KiB with two system calls, and the scratch space
// of a B-tree page split stays under that only with 2 KiB pages; with 4 KiB
// pages a third of the projector's CPU time went to those calls.
func (s *Store) migrate(ctx context.Context) error {
	var mode string
	if err := s.w.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode); err != nil {
		return s.fail("open", err)
	}
	if mode != "wal" {
		return fmt.Errorf("%w: sqlite open: journal mode %q, want wal", readmodel.ErrUnavailable, mode)
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return s.fail("open", err)
	}
	defer tx.Rollback()
	var version int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return s.fail("open", err)
	}
	if version == schemaVersion {
		return nil
	}
	if err := dropAll(ctx, tx); err != nil {
		return s.fail("create schema", err)
	}
	for _, stmt := range schema(live, 1) {
		if _, err := tx.ExecContext(ctx, stmt); err != nil {
			return s.fail("create schema", err)
		}
	}
	if _, err := tx.ExecContext(ctx, "PRAGMA user_version = "+strconv.Itoa(schemaVersion)); err != nil {
		return s.fail("create schema", err)
	}
	return s.fail("create schema", tx.Commit())
}

// dropAll drops every table: virtual tables first, which drops their shadow
// tables with them.
func dropAll(ctx context.Context, tx *sql.Tx) error {
	for _, pass := range []string{"sql LIKE 'CREATE VIRTUAL TABLE%'", "1"} {
		rows, err := tx.QueryContext(ctx, "SELECT name FROM sqlite_schema WHERE type = 'table'"+
			" AND name NOT LIKE 'sqlite_%' AND "+pass)
		if err != nil {
			return err
		}
		var names []string
		for rows.Next() {
			var name string
			if err := rows.Scan(&name); err != nil {
				rows.Close()
				return err
			}
			names = append(names, name)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		for _, name := range names {
			if _, err := tx.ExecContext(ctx, `DROP TABLE IF EXISTS "`+strings.ReplaceAll(name, `"`, `""`)+`"`); err != nil {
				return err
			}
		}
	}
	return nil
}

// Ping reports whether the database can be read.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return s.fail("ping", errClosed)
	}
	var n int64
	err := s.queryRow(ctx, nil, []any{&n}, "SELECT seq FROM "+live.checkpoint)
	return s.fail("ping", err)
}

// Close closes the database; a rebuild in progress is left on disk and
// dropped by the next Rebuild.
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	var errR, errC error
	if s.ckpt != nil {
		errC = s.ckpt.close()
	}
	if s.r != nil {
		s.stmts.close()
		errR = s.r.Close()
	}
	return errors.Join(errC, errR, s.w.Close())
}

var errClosed = errors.New("store closed")

// fail wraps err with the operation; errors meaning that the database cannot
// be used right now (closed, busy, I/O, corrupt, full, unopenable) also wrap
// readmodel.ErrUnavailable so that callers may retry or report 503.
func (s *Store) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	if fault.Of(err) != nil { // classified already (a lost lease, say)
		return fmt.Errorf("sqlite %s: %w", op, err)
	}
	if unavailable(err) || s.closed.Load() {
		return fmt.Errorf("%w: sqlite %s: %w", readmodel.ErrUnavailable, op, err)
	}
	return fmt.Errorf("%w: sqlite %s: %w", readmodel.ErrInternal, op, err)
}

func unavailable(err error) bool {
	if errors.Is(err, errClosed) || errors.Is(err, sql.ErrConnDone) {
		return true
	}
	var se *msqlite.Error
	if !errors.As(err, &se) {
		return false
	}
	switch se.Code() & 0xff {
	case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED, sqlite3.SQLITE_NOMEM, sqlite3.SQLITE_READONLY,
		sqlite3.SQLITE_IOERR, sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_FULL, sqlite3.SQLITE_CANTOPEN,
		sqlite3.SQLITE_PROTOCOL, sqlite3.SQLITE_NOTADB, sqlite3.SQLITE_PERM:
		return true
	}
	return false
}
