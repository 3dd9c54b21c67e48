package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"math/rand/v2"
	"syscall"
)

func cpu() time.Duration { var ru syscall.Rusage; syscall.Getrusage(syscall.RUSAGE_SELF, &ru); return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()) }


func TestTmpCustomersJSON(t *testing.T) {
	ctx := context.Background()
	colsList := strings.Split(writeColumns, ", ")
	var sel []string
	for i := range colsList {
		sel = append(sel, "value ->> "+itoa(i))
	}
	for _, v := range []struct{ name string; notnull bool; verb string; per int }{
		{"json replace nullable", false, "INSERT OR REPLACE", 500},
		{"json replace notnull", true, "INSERT OR REPLACE", 500},
		{"json insert notnull", true, "INSERT", 500},
		{"single replace nullable", false, "INSERT OR REPLACE", 1},
	} {
		db, err := sql.Open("sqlite", dsn(filepath.Join(t.TempDir(), "x.db"), "_txlock=immediate", "_pragma=journal_mode(WAL)", "_pragma=synchronous(NORMAL)", "_pragma=temp_store(MEMORY)", "_pragma=cache_size(-32000)"))
		if err != nil { t.Fatal(err) }
		db.SetMaxOpenConns(1)
		for _, st := range schema(live, 1) {
			if !v.notnull { st = strings.ReplaceAll(st, "NOT NULL", "") }
			if _, err := db.Exec(st); err != nil { t.Fatal(err) }
		}
		q := v.verb + " INTO customers (" + writeColumns + ") SELECT " + strings.Join(sel, ", ") + " FROM json_each(?)"
		if v.per == 1 {
			q = v.verb + " INTO customers (" + writeColumns + ") VALUES (" + placeholders(len(colsList)) + ")"
		}
		r := rand.New(rand.NewPCG(1, 2))
		id := 0
		var gen time.Duration
		for round := 0; round < 6; round++ {
			tx, _ := db.BeginTx(ctx, nil)
			start := time.Now()
			c0 := cpu()
			gen = 0
			for i := 0; i < 5000/v.per; i++ {
				var batch [][]any
				g := time.Now()
				for j := 0; j < v.per; j++ {
					id++
					d := benchDoc(r, id)
					batch = append(batch, []any{id, d.ID, d.Code, id, d.Name, strings.ToLower(d.Name), d.Email, d.Phone, d.Company, d.Address.Street, d.Address.City, "", "US", "", d.Type, d.Status, "", "[]", d.CreatedBy, d.CreatedAt.UnixNano(), d.UpdatedAt.UnixNano(), 1, id, false, "a b", "c d", "e f g"})
				}
				var err error
				if v.per == 1 {
					_, err = tx.Exec(q, batch[0]...)
				} else {
					js, _ := json.Marshal(batch)
					gen += time.Since(g)
					_, err = tx.Exec(q, string(js))
				}
				if err != nil { t.Fatal(v.name, err) }
			}
			tx.Commit()
			if round == 0 || round == 5 {
				t.Logf("%-28s round %d: %v/row cpu %v/row (gen %v/row)", v.name, round, time.Since(start)/5000, (cpu()-c0)/5000, gen/5000)
			}
		}
		db.Close()
	}
}

func itoa(i int) string { return string(rune('0'+i/10)) + string(rune('0'+i%10)) }
