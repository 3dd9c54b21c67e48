package app_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"crm/internal/apptest"
	"crm/internal/embedded"
	"crm/internal/events"
)

// TestClusterLeaderLossDuringCreates runs the service on a 3-node JetStream
// cluster (in-process, as nats-server's own tests do) with the streams at 3
// replicas, and stops the customer stream's leader during 1,000 concurrent
// creates: no acknowledged create is lost or duplicated and no code is
// assigned twice.
func TestClusterLeaderLossDuringCreates(t *testing.T) {
	if testing.Short() {
		t.Skip("cluster test skipped in -short")
	}
	servers, err := embedded.StartCluster("crm", []string{t.TempDir(), t.TempDir(), t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	var urls []string
	for _, s := range servers {
		urls = append(urls, s.ClientURL())
		t.Cleanup(s.Shutdown)
	}
	nc, err := nats.Connect(strings.Join(urls, ","))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	apptest.Eventually(t, 30*time.Second, "JetStream cluster ready", func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := js.AccountInfo(ctx)
		return err == nil
	})

	cfg := apptest.Config(t, t.TempDir())
	cfg.NATSURL = strings.Join(urls, ",")
	cfg.StreamReplicas = 3
	e := apptest.Start(t, cfg)

	ctx := context.Background()
	stream, err := js.Stream(ctx, "CRM_CUSTOMERS")
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := stream.Info(ctx); info.Config.Replicas != 3 {
		t.Fatalf("stream replicas %d", info.Config.Replicas)
	}

	const total = 1000
	type outcome struct {
		status int
		id     string
	}
	results := make(chan outcome, total)
	jobs := make(chan int)
	var workers sync.WaitGroup
	for range 32 {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for i := range jobs {
				r := e.Do("POST", "/api/v1/crm/customers", fmt.Sprintf(`{"name":"Cluster %d"}`, i))
				o := outcome{status: r.Status}
				if r.Status == http.StatusCreated {
					var env envelope
					json.Unmarshal(r.Body, &env)
					o.id = env.Data.CustomerID
				}
				results <- o
			}
		}()
	}
	go func() {
		for i := range total {
			if i == 300 { // stop the stream leader while creates are in flight
				info, err := stream.Info(ctx)
				if err == nil && info.Cluster != nil {
					for j, s := range servers {
						if fmt.Sprintf("crm-n%d", j+1) == info.Cluster.Leader {
							t.Logf("stopping stream leader %s", info.Cluster.Leader)
							go s.Shutdown()
						}
					}
				}
			}
			jobs <- i
		}
		close(jobs)
	}()
	workers.Wait()
	close(results)

	ok := map[string]bool{}
	failed := 0
	for o := range results {
		if o.status == http.StatusCreated {
			ok[o.id] = true
		} else if o.status != http.StatusServiceUnavailable {
			t.Fatalf("a create answered %d (want 201 or 503)", o.status)
		} else {
			failed++
		}
	}
	// Read the stream from a surviving server.
	created := map[string]int{}
	codes := map[string]string{}
	var info *jetstream.StreamInfo
	apptest.Eventually(t, 30*time.Second, "stream readable after the leader loss", func() bool {
		info, err = stream.Info(ctx)
		return err == nil
	})
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := stream.GetMsg(ctx, seq)
		if err != nil {
			t.Fatalf("get %d: %v", seq, err)
		}
		ev, err := events.Decode(m.Data)
		if err != nil {
			t.Fatal(err)
		}
		if d, isCreate := ev.Data.(*events.CustomerCreated); isCreate {
			created[d.CustomerID]++
			if other, dup := codes[d.CustomerCode]; dup {
				t.Fatalf("code %s given to %s and %s", d.CustomerCode, other, d.CustomerID)
			}
			codes[d.CustomerCode] = d.CustomerID
		}
	}
	for id := range ok {
		if created[id] != 1 {
			t.Fatalf("acknowledged create %s is %d times in the stream", id, created[id])
		}
	}
	t.Logf("%d acknowledged, %d failed with 503; the stream holds %d creates", len(ok), failed, len(created))
	if len(ok) == 0 {
		t.Fatal("nothing succeeded")
	}
}
