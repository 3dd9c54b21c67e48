package apptest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"crm/internal/events"
)

// The JSON Schemas of the published events (docs/events, one per
// registered kind), compiled once.
var (
	schemaOnce sync.Once
	schemas    map[string]*jsonschema.Schema
	schemaErr  error
)

func eventSchemas() (map[string]*jsonschema.Schema, error) {
	schemaOnce.Do(func() {
		_, file, _, _ := runtime.Caller(0)
		dir := filepath.Join(filepath.Dir(file), "..", "..", "docs", "events")
		c := jsonschema.NewCompiler()
		c.DefaultDraft(jsonschema.Draft2020)
		c.AssertFormat()
		schemas = map[string]*jsonschema.Schema{}
		for _, d := range events.Definitions() {
			path := filepath.Join(dir, d.Schema)
			b, err := os.ReadFile(path)
			if err != nil {
				schemaErr = err
				return
			}
			doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(b))
			if err != nil {
				schemaErr = err
				return
			}
			if err := c.AddResource(path, doc); err != nil {
				schemaErr = err
				return
			}
			s, err := c.Compile(path)
			if err != nil {
				schemaErr = fmt.Errorf("compile %s: %w", path, err)
				return
			}
			schemas[d.Type] = s
		}
	})
	return schemas, schemaErr
}

// ValidateEvent checks one encoded event against the JSON Schema of its type.
// Events of types without a schema (older versions, such as created.v0 that
// a test writes by hand) are skipped.
func ValidateEvent(data []byte) error {
	s, err := eventSchemas()
	if err != nil {
		return err
	}
	var head struct{ Type string }
	if err := json.Unmarshal(data, &head); err != nil {
		return err
	}
	schema, ok := s[head.Type]
	if !ok {
		return nil
	}
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return err
	}
	return schema.Validate(v)
}

// validateStream checks every event in the service's stream against its
// schema (run at the end of every test that starts a service).
func (e *Env) validateStream() {
	for _, m := range e.StreamMessages() {
		if err := ValidateEvent(m.Data); err != nil {
			e.T.Errorf("event %d (%s) violates its published JSON Schema: %v\n%s", m.Sequence, m.Subject, err, m.Data)
		}
	}
}
