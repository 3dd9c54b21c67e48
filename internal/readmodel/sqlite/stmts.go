package sqlite

import (
	"context"
	"database/sql"
	"sync"
	"time"
)

// maxCachedStmts bounds the reader statements kept prepared. The queries
// are built from a fixed set of shapes (filters present, sort, number of
// search words), all values are bound, so the set is small; past the bound
// a query runs unprepared.
const maxCachedStmts = 512

// stmtCache keeps the readers' prepared statements by SQL text. Since
// modernc.org/sqlite v1.41 a prepared statement keeps its compiled program
// between executions (database/sql prepares it once per pooled connection);
// an unprepared query is parsed and planned on every call, which was a fifth
// of the CPU time of the read phases at 100,000 customers. SQLite recompiles
// a prepared statement by itself when the schema changes (Swap renames
// tables), so a cached statement always reads the live tables.
type stmtCache struct {
	mu     sync.Mutex
	m      map[string]*sql.Stmt
	closed bool
}

// query runs the read query with args, in tx when tx is not nil, through the
// cached prepared statement of its text when there is one.
func (s *Store) query(ctx context.Context, tx *sql.Tx, query string, args ...any) (*sql.Rows, error) {
	st := s.prepared(query)
	switch {
	case st == nil && tx != nil:
		return tx.QueryContext(ctx, query, args...)
	case st == nil:
		return s.r.QueryContext(ctx, query, args...)
	case tx != nil:
		// Prepared on tx's connection once, then reused; closed with tx.
		return tx.StmtContext(ctx, st).QueryContext(ctx, args...)
	default:
		return st.QueryContext(ctx, args...)
	}
}

// queryRow is query for a single row.
func (s *Store) queryRow(ctx context.Context, tx *sql.Tx, dest []any, query string, args ...any) error {
	rows, err := s.query(ctx, tx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	if !rows.Next() {
		if err := rows.Err(); err != nil {
			return err
		}
		return sql.ErrNoRows
	}
	if err := rows.Scan(dest...); err != nil {
		return err
	}
	return rows.Close()
}

// prepared returns the cached statement of query, or nil while there is
// none: then it starts preparing one in the background, unless the cache is
// full, and the caller runs the query unprepared this once. (Preparing
// through the pool needs a free connection; a caller inside a transaction
// holds one, and with every connection held by such callers, preparing in
// line would wait forever.)
func (s *Store) prepared(query string) *sql.Stmt {
	c := &s.stmts
	c.mu.Lock()
	defer c.mu.Unlock()
	st, ok := c.m[query]
	if ok || c.closed || len(c.m) >= maxCachedStmts {
		return st // nil while being prepared
	}
	if c.m == nil {
		c.m = make(map[string]*sql.Stmt)
	}
	c.m[query] = nil
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		st, err := s.r.PrepareContext(ctx, query)
		c.mu.Lock()
		defer c.mu.Unlock()
		switch {
		case err != nil:
			delete(c.m, query) // tried again on next use
		case c.closed:
			_ = st.Close()
		default:
			c.m[query] = st
		}
	}()
	return nil
}

// close closes every cached statement.
func (c *stmtCache) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for q, st := range c.m {
		if st != nil {
			_ = st.Close()
		}
		delete(c.m, q)
	}
}
