package customer_test

import (
	"os/exec"
	"strings"
	"testing"
)

func deps(t *testing.T, pkgs ...string) []string {
	t.Helper()
	out, err := exec.Command("go", append([]string{"list", "-deps"}, pkgs...)...).Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	return strings.Fields(string(out))
}

// TestDomainIsPure keeps the domain, the event contract, the error kinds and
// the command side free of transport and storage: no gin, nats, mongo or sql.
func TestDomainIsPure(t *testing.T) {
	for _, d := range deps(t, "crm/internal/customer", "crm/internal/contact", "crm/internal/activity", "crm/internal/events", "crm/internal/search", "crm/internal/audit",
		"crm/internal/fault", "crm/internal/commands") {
		for _, banned := range []string{"gin-gonic", "nats-io", "mongo-driver", "modernc.org/sqlite", "net/http"} {
			if strings.Contains(d, banned) || d == "database/sql" {
				t.Errorf("the domain depends on %s", d)
			}
		}
	}
}

// TestTestOnlyDependenciesStayOutOfBinaries: FerretDB and the JSON Schema
// validator are test dependencies only.
func TestTestOnlyDependenciesStayOutOfBinaries(t *testing.T) {
	for _, d := range deps(t, "crm/cmd/api", "crm/cmd/projector", "crm/cmd/crmctl") {
		if strings.Contains(d, "FerretDB") || strings.Contains(d, "jsonschema") {
			t.Errorf("a binary links %s", d)
		}
	}
}
