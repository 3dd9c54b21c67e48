package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

func TestTmpStmtSpeed(t *testing.T) {
	ctx := context.Background()
	for _, v := range []struct{ name, schema, stmt string }{
		{"plain insert notnull unique", "CREATE TABLE x (id INTEGER PRIMARY KEY, k TEXT NOT NULL UNIQUE, a TEXT NOT NULL, b INTEGER NOT NULL); CREATE INDEX xa ON x(a, b)", "INSERT INTO x (k, a, b) VALUES (?, ?, ?)"},
		{"plain insert no constraints", "CREATE TABLE x (id INTEGER PRIMARY KEY, k TEXT UNIQUE, a TEXT, b INTEGER); CREATE INDEX xa ON x(a, b)", "INSERT INTO x (k, a, b) VALUES (?, ?, ?)"},
		{"upsert", "CREATE TABLE x (id INTEGER PRIMARY KEY, k TEXT NOT NULL UNIQUE, a TEXT NOT NULL, b INTEGER NOT NULL); CREATE INDEX xa ON x(a, b)", "INSERT INTO x (k, a, b) VALUES (?, ?, ?) ON CONFLICT (k) DO UPDATE SET a = excluded.a, b = excluded.b WHERE excluded.b > x.b"},
		{"upsert returning", "CREATE TABLE x (id INTEGER PRIMARY KEY, k TEXT NOT NULL UNIQUE, a TEXT NOT NULL, b INTEGER NOT NULL); CREATE INDEX xa ON x(a, b)", "INSERT INTO x (k, a, b) VALUES (?, ?, ?) ON CONFLICT (k) DO UPDATE SET a = excluded.a, b = excluded.b WHERE excluded.b > x.b RETURNING id"},
		{"fts insert", "CREATE VIRTUAL TABLE x USING fts5(k, a, b, content='', contentless_delete=1, detail=none, tokenize='ascii', prefix='1 2 3')", "INSERT INTO x (k, a, b) VALUES (?, ?, ?)"},
		{"fts insert noprefix", "CREATE VIRTUAL TABLE x USING fts5(k, a, b, content='', contentless_delete=1, detail=none, tokenize='ascii')", "INSERT INTO x (k, a, b) VALUES (?, ?, ?)"},
		{"tags insert or ignore", "CREATE TABLE x (k TEXT NOT NULL, a TEXT NOT NULL, b INTEGER NOT NULL, PRIMARY KEY (k, a)) WITHOUT ROWID", "INSERT OR IGNORE INTO x (k, a, b) VALUES (?, ?, ?)"},
	} {
		db, err := sql.Open("sqlite", dsn(filepath.Join(t.TempDir(), "x.db"), "_txlock=immediate", "_pragma=journal_mode(WAL)", "_pragma=synchronous(NORMAL)"))
		if err != nil { t.Fatal(err) }
		db.SetMaxOpenConns(1)
		if _, err := db.Exec(v.schema); err != nil { t.Fatal(v.name, err) }
		tx, _ := db.BeginTx(ctx, nil)
		st, err := tx.Prepare(v.stmt)
		if err != nil { t.Fatal(v.name, err) }
		start := time.Now()
		for i := 0; i < 5000; i++ {
			if v.name == "upsert returning" {
				var id int64
				if err := st.QueryRow(fmt.Sprintf("key%d", i), fmt.Sprintf("john smith %d", i%100), i).Scan(&id); err != nil { t.Fatal(err) }
				continue
			}
			if _, err := st.Exec(fmt.Sprintf("key%d", i), fmt.Sprintf("john smith %d", i%100), i); err != nil { t.Fatal(err) }
		}
		tx.Commit()
		t.Logf("%-30s %v/op", v.name, time.Since(start)/5000)
		db.Close()
	}
}
