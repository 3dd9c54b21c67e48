// Package imports runs import jobs: an upload of CSV or NDJSON rows is
// spooled to disk, then read row by row in the background, each valid row
// becoming a customer through the command side in atomic batches (one
// synced write per batch), the rejected ones kept with their line and
// field errors. A job's state is a file beside its upload, saved after
// every batch, so that a restarted service resumes it where it stopped;
// each row's customer and event ids derive from the job and the line, so
// a row is never created twice (not by a resumed job, not by a rerun
// with the same Idempotency-Key).
package imports

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"crm/internal/auth"
	"crm/internal/commands"
	"crm/internal/customer"
	"crm/internal/fault"
)

// States of a job.
const (
	StateValidating = "validating" // counting and checking the rows
	StateRunning    = "running"    // creating the customers
	StateDone       = "done"
	StateFailed     = "failed"
	StateCancelled  = "cancelled"
)

// Formats of an upload.
const (
	FormatCSV    = "csv"
	FormatNDJSON = "ndjson"
)

// BatchRows is how many rows one atomic append carries (with an external id
// claim each, the 1,000 messages of JetStream's largest atomic batch).
const BatchRows = 500

// inFlight is how many batches of a job are appended at once.
const inFlight = 3

// MaxStoredErrors bounds the rejected rows a job keeps (the count goes on).
const MaxStoredErrors = 100_000

// Errors of the manager.
var (
	ErrNotFound = fault.New(fault.NotFound, "import job not found")
	ErrFinished = fault.New(fault.Conflict, "the import job has finished; nothing to cancel")
	ErrRunning  = fault.New(fault.Conflict, "an import job with this Idempotency-Key is still running")
)

// Job is an import job as its state file keeps it and the API shows it.
type Job struct {
	ID             string            `json:"id"`
	State          string            `json:"state"`
	Format         string            `json:"format"`
	Mapping        map[string]string `json:"mapping,omitempty"`
	DryRun         bool              `json:"dryRun"`
	CreatedBy      string            `json:"createdBy"`
	CreatedAt      time.Time         `json:"createdAt"`
	UpdatedAt      time.Time         `json:"updatedAt"`
	FinishedAt     *time.Time        `json:"finishedAt"`
	Bytes          int64             `json:"bytes"`     // the upload's size
	BytesRead      int64             `json:"bytesRead"` // how far the rows are read
	RowsTotal      int64             `json:"rowsTotal"` // counted while validating
	RowsRead       int64             `json:"rowsRead"`
	RowsCreated    int64             `json:"rowsCreated"`
	RowsExisting   int64             `json:"rowsExisting"` // created by an earlier run of the job
	RowsRejected   int64             `json:"rowsRejected"`
	IgnoredColumns []string          `json:"ignoredColumns,omitempty"`
	Error          string            `json:"error,omitempty"` // why it failed
	// LastSequence is the stream sequence of the job's last event: the
	// read model has every customer of the job once it reaches it.
	LastSequence uint64 `json:"lastSequence"`
	// RunSeconds is the time spent running (all runs).
	RunSeconds float64 `json:"runSeconds"`

	ErrorsBytes int64 `json:"errorsBytes"`  // the errors file's length at the last save
	Stored      int64 `json:"storedErrors"` // rejected rows kept in the errors file
}

// Finished reports whether the job has ended.
func (j Job) Finished() bool {
	return j.State == StateDone || j.State == StateFailed || j.State == StateCancelled
}

// RowError is one rejected row.
type RowError struct {
	Line   int64        `json:"line"`
	Errors []FieldError `json:"errors"`
}

// FieldError is one reason a row was rejected.
type FieldError struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

func fieldErrors(fs []fault.FieldError) []FieldError {
	out := make([]FieldError, len(fs))
	for i, f := range fs {
		out[i] = FieldError{f.Field, f.Message}
	}
	return out
}

// Creator is what a job needs of the command side.
type Creator interface {
	ImportCreates(ctx context.Context, r commands.Request, rows []commands.ImportRow) ([]commands.ImportResult, error)
}

// Manager keeps the jobs of one directory.
type Manager struct {
	dir     string
	creator Creator
	log     *slog.Logger
	ctx     context.Context
	stop    context.CancelFunc
	wg      sync.WaitGroup

	mu        sync.Mutex
	running   map[string]context.CancelFunc
	jobs      map[string]*Job // the live state of running jobs
	uploading map[string]bool // keyed uploads being stored
}

// Open opens (creating) dir and resumes its unfinished jobs.
func Open(dir string, creator Creator, log *slog.Logger) (*Manager, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("imports: %w", err)
	}
	ctx, stop := context.WithCancel(context.Background())
	m := &Manager{dir: dir, creator: creator, log: log, ctx: ctx, stop: stop,
		running: map[string]context.CancelFunc{}, jobs: map[string]*Job{}, uploading: map[string]bool{}}
	jobs, err := m.list()
	if err != nil {
		return nil, err
	}
	for _, j := range jobs {
		if !j.Finished() {
			log.Info("import resumed", "job", j.ID, "rows_read", j.RowsRead)
			m.launch(&j)
		}
	}
	return m, nil
}

// Close stops the running jobs at their next batch; they resume at the
// next Open.
func (m *Manager) Close() {
	m.stop()
	m.wg.Wait()
}

func (m *Manager) path(id, ext string) string { return filepath.Join(m.dir, id+ext) }

// Submit spools body and starts a job for it. With an idempotency key the
// job's id derives from the principal and the key: a job that is running
// or done is returned as it is (replayed, body unread), a failed or
// cancelled one runs again on the new upload, its rows keeping their ids.
// check validates the upload's header before the job starts (a bad header
// is a fault.Invalid error naming it, nothing started).
func (m *Manager) Submit(p auth.Principal, format string, mapping map[string]string, dryRun bool, key string,
	body io.Reader, copyChunk func()) (Job, bool, error) {
	id := uuid.NewString()
	if key != "" {
		id = uuid.NewSHA1(uuid.NameSpaceURL, []byte("urn:crm:import-key:"+p.Subject+"\x00"+key)).String()
		// Running or done: that job is the answer.
		if old, err := m.Get(id); err == nil && (!old.Finished() || old.State == StateDone) {
			return old, true, nil
		}
		m.mu.Lock()
		_, stopping := m.running[id] // cancelled, its worker not ended yet
		m.mu.Unlock()
		if stopping {
			return Job{}, false, ErrRunning
		}
		// One upload per key at a time (a client retrying while its first
		// upload still streams).
		m.mu.Lock()
		if m.uploading[id] {
			m.mu.Unlock()
			return Job{}, false, ErrRunning
		}
		m.uploading[id] = true
		m.mu.Unlock()
		defer func() {
			m.mu.Lock()
			delete(m.uploading, id)
			m.mu.Unlock()
		}()
	}
	tmp := m.path(id, ".upload.tmp")
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return Job{}, false, fault.Wrap(fault.Internal, "spool the upload", err)
	}
	n, err := copyChunks(f, body, copyChunk)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return Job{}, false, err
	}
	if err := checkHeader(tmp, format, mapping); err != nil {
		os.Remove(tmp)
		return Job{}, false, err
	}
	if err := os.Rename(tmp, m.path(id, ".upload")); err != nil {
		return Job{}, false, fault.Wrap(fault.Internal, "spool the upload", err)
	}
	os.Remove(m.path(id, ".errors.ndjson"))
	now := time.Now().UTC()
	j := &Job{ID: id, State: StateValidating, Format: format, Mapping: mapping, DryRun: dryRun, CreatedBy: p.Subject,
		CreatedAt: now, UpdatedAt: now, Bytes: n}
	if err := m.save(j); err != nil {
		return Job{}, false, err
	}
	out := *j
	m.launch(j)
	return out, false, nil
}

// copyChunks copies body to w 1 MiB at a time, calling chunk before each
// read (the handler extends the read deadline).
func copyChunks(w io.Writer, body io.Reader, chunk func()) (int64, error) {
	buf := make([]byte, 1<<20)
	var n int64
	for {
		if chunk != nil {
			chunk()
		}
		k, err := body.Read(buf)
		if k > 0 {
			if _, werr := w.Write(buf[:k]); werr != nil {
				return n, fault.Wrap(fault.Unavailable, "the upload could not be stored (disk full?)", werr)
			}
			n += int64(k)
		}
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// checkHeader opens the rows of an upload as the job will.
func checkHeader(path, format string, mapping map[string]string) error {
	f, err := os.Open(path)
	if err != nil {
		return fault.Wrap(fault.Internal, "read the upload", err)
	}
	defer f.Close()
	if format == FormatCSV {
		if _, err := NewCSV(f, mapping); err != nil {
			return fault.InvalidField("header", err.Error())
		}
	}
	return nil
}

// Get returns a job.
func (m *Manager) Get(id string) (Job, error) {
	m.mu.Lock()
	if j, ok := m.jobs[id]; ok {
		defer m.mu.Unlock()
		return *j, nil
	}
	m.mu.Unlock()
	return m.read(id)
}

// List returns every job, newest first.
func (m *Manager) List() ([]Job, error) {
	jobs, err := m.list()
	if err != nil {
		return nil, err
	}
	out := make([]Job, len(jobs))
	for i, j := range jobs {
		out[i], _ = m.Get(j.ID)
	}
	slices.SortFunc(out, func(a, b Job) int { return b.CreatedAt.Compare(a.CreatedAt) })
	return out, nil
}

// Cancel stops a job at its next batch (the rows created stay).
func (m *Manager) Cancel(id string) (Job, error) {
	m.mu.Lock()
	cancel, ok := m.running[id]
	if ok && m.jobs[id].State != StateCancelled {
		j := m.jobs[id]
		j.State = StateCancelled // the worker saves it when it stops
		cancel()
		out := *j
		m.mu.Unlock()
		return out, nil
	}
	m.mu.Unlock()
	j, err := m.Get(id)
	if err != nil {
		return Job{}, err
	}
	return j, ErrFinished
}

// Errors returns up to limit rejected rows from the offset-th, and how
// many are kept.
func (m *Manager) Errors(id string, offset, limit int64) ([]RowError, int64, error) {
	j, err := m.Get(id)
	if err != nil {
		return nil, 0, err
	}
	f, err := os.Open(m.path(id, ".errors.ndjson"))
	if errors.Is(err, os.ErrNotExist) {
		return []RowError{}, 0, nil
	}
	if err != nil {
		return nil, 0, fault.Wrap(fault.Internal, "read the errors", err)
	}
	defer f.Close()
	out := []RowError{}
	sc := bufio.NewScanner(io.LimitReader(f, j.ErrorsBytes))
	sc.Buffer(make([]byte, 64<<10), 4<<20)
	for i := int64(0); sc.Scan() && int64(len(out)) < limit; i++ {
		if i < offset {
			continue
		}
		var e RowError
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, 0, fault.Wrap(fault.Internal, "read the errors", err)
		}
		out = append(out, e)
	}
	return out, j.Stored, nil
}

func (m *Manager) read(id string) (Job, error) {
	if _, err := uuid.Parse(id); err != nil {
		return Job{}, ErrNotFound
	}
	b, err := os.ReadFile(m.path(id, ".json"))
	if errors.Is(err, os.ErrNotExist) {
		return Job{}, ErrNotFound
	}
	if err != nil {
		return Job{}, fault.Wrap(fault.Internal, "read the job", err)
	}
	var j Job
	if err := json.Unmarshal(b, &j); err != nil {
		return Job{}, fault.Wrap(fault.Internal, "read the job", err)
	}
	return j, nil
}

func (m *Manager) list() ([]Job, error) {
	names, err := filepath.Glob(filepath.Join(m.dir, "*.json"))
	if err != nil {
		return nil, err
	}
	var out []Job
	for _, n := range names {
		j, err := m.read(strings.TrimSuffix(filepath.Base(n), ".json"))
		if err != nil {
			m.log.Warn("import job unreadable", "file", n, "err", err)
			continue
		}
		out = append(out, j)
	}
	return out, nil
}

// save writes the job's state atomically (a temporary file renamed).
func (m *Manager) save(j *Job) error {
	j.UpdatedAt = time.Now().UTC()
	b, _ := json.Marshal(j)
	tmp := m.path(j.ID, ".json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fault.Wrap(fault.Unavailable, "save the import job", err)
	}
	if err := os.Rename(tmp, m.path(j.ID, ".json")); err != nil {
		return fault.Wrap(fault.Unavailable, "save the import job", err)
	}
	return nil
}

func (m *Manager) launch(j *Job) {
	ctx, cancel := context.WithCancel(m.ctx)
	m.mu.Lock()
	m.running[j.ID] = cancel
	m.jobs[j.ID] = j
	m.mu.Unlock()
	m.wg.Go(func() {
		defer cancel()
		m.run(ctx, j)
		m.mu.Lock()
		delete(m.running, j.ID)
		delete(m.jobs, j.ID)
		m.mu.Unlock()
	})
}

// update changes the live job under the lock and saves it.
func (m *Manager) update(j *Job, f func(j *Job)) error {
	m.mu.Lock()
	f(j)
	snapshot := *j
	m.mu.Unlock()
	return m.save(&snapshot)
}

// run carries a job out from where its state says it is.
func (m *Manager) run(ctx context.Context, j *Job) {
	log := m.log.With("job", j.ID)
	err := m.work(ctx, j, log)
	m.mu.Lock()
	cancelled := j.State == StateCancelled
	m.mu.Unlock()
	switch {
	case cancelled:
		err = nil
	case m.ctx.Err() != nil:
		log.Info("import paused for shutdown", "rows_read", j.RowsRead)
		_ = m.update(j, func(*Job) {})
		return
	}
	now := time.Now().UTC()
	_ = m.update(j, func(j *Job) {
		j.FinishedAt = &now
		switch {
		case cancelled:
		case err != nil:
			j.State, j.Error = StateFailed, err.Error()
		default:
			j.State = StateDone
		}
	})
	log.Info("import finished", "state", j.State, "created", j.RowsCreated, "rejected", j.RowsRejected, "err", err)
}

// batch is the rows between two saves: the valid ones to create and every
// row's place.
type batch struct {
	rows     []commands.ImportRow
	lines    []int64
	rejected []RowError
	read     int64 // rows read, valid or not
	offset   int64
}

func (m *Manager) work(ctx context.Context, j *Job, log *slog.Logger) error {
	errFile, err := os.OpenFile(m.path(j.ID, ".errors.ndjson"), os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		return fmt.Errorf("open the errors file: %w", err)
	}
	defer errFile.Close()
	// Rows rejected after the last save are rejected again: drop them.
	if err := errFile.Truncate(j.ErrorsBytes); err != nil {
		return fmt.Errorf("errors file: %w", err)
	}
	if _, err := errFile.Seek(j.ErrorsBytes, io.SeekStart); err != nil {
		return fmt.Errorf("errors file: %w", err)
	}
	m.mu.Lock()
	validating := j.State == StateValidating
	m.mu.Unlock()
	if validating {
		total, err := m.count(ctx, j)
		if err != nil {
			return err
		}
		if err := m.update(j, func(j *Job) {
			j.RowsTotal = total
			if j.State == StateValidating { // not cancelled meanwhile
				j.State = StateRunning
			}
		}); err != nil {
			return err
		}
	}
	f, err := os.Open(m.path(j.ID, ".upload"))
	if err != nil {
		return fmt.Errorf("open the upload: %w", err)
	}
	defer f.Close()
	rd, err := m.rows(f, j)
	if err != nil {
		return err
	}
	_ = m.update(j, func(j *Job) { j.IgnoredColumns = rd.Ignored() })
	// Skip what earlier runs did.
	for i := int64(0); i < j.RowsRead; i++ {
		if _, err := rd.Next(); err != nil {
			return fmt.Errorf("resume at row %d: %w", j.RowsRead, err)
		}
	}
	req := commands.Request{Principal: auth.Principal{Subject: j.CreatedBy, Permissions: []string{auth.PermCreate}},
		CorrelationID: j.ID, CausationID: j.ID}

	// Parse and validate ahead (one goroutine) while the batch before is
	// appended; it stops when this returns.
	batches := make(chan batch, 2)
	defer func() {
		for range batches { // let the reader end
		}
	}()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	readErr := make(chan error, 1)
	go func() {
		defer close(batches)
		for {
			b := batch{}
			for len(b.rows) < BatchRows && b.read < 4*BatchRows {
				row, err := rd.Next()
				if errors.Is(err, io.EOF) {
					break
				}
				if err != nil {
					b.offset = rd.Offset()
					if b.read > 0 {
						select {
						case batches <- b:
						case <-ctx.Done():
						}
					}
					readErr <- err
					return
				}
				b.read++
				errs := row.Errors
				if len(errs) == 0 {
					errs = fault.Fields(customer.ValidateCreate(row.Input))
				}
				if len(errs) > 0 {
					b.rejected = append(b.rejected, RowError{Line: row.Line, Errors: fieldErrors(errs)})
					continue
				}
				cid, eid := commands.ImportIDs(j.ID, row.Line)
				b.rows = append(b.rows, commands.ImportRow{CustomerID: cid, EventID: eid, Input: row.Input})
				b.lines = append(b.lines, row.Line)
			}
			b.offset = rd.Offset()
			if b.read == 0 {
				readErr <- nil
				return
			}
			select {
			case batches <- b:
			case <-ctx.Done():
				readErr <- nil
				return
			}
		}
	}()
	// Up to inFlight batches are appended at once (each one synced write:
	// overlapping them keeps the disk and the server busy); their results
	// are taken in file order, so the saved progress never passes a batch
	// that is not stored.
	type pending struct {
		b       batch
		results []commands.ImportResult
		err     error
		done    chan struct{}
	}
	queue := make(chan *pending, inFlight-1)
	var appenders sync.WaitGroup
	defer appenders.Wait()
	go func() {
		defer close(queue)
		for b := range batches {
			p := &pending{b: b, done: make(chan struct{})}
			appenders.Go(func() {
				defer close(p.done)
				if len(p.b.rows) > 0 && !j.DryRun {
					p.results, p.err = m.creator.ImportCreates(ctx, req, p.b.rows)
				}
			})
			select {
			case queue <- p:
			case <-ctx.Done():
				return
			}
		}
	}()
	defer func() {
		cancel() // stop the reader and the starter before waiting for them
		for range queue {
		}
	}()
	tick := time.Now() // the job's running time is wall time, batches overlapping
	for p := range queue {
		<-p.done
		b := p.b
		if ctx.Err() != nil {
			return nil
		}
		var created, existing int64
		var last uint64
		if len(b.rows) > 0 && !j.DryRun {
			results, err := p.results, p.err
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return fmt.Errorf("rows up to line %d: %w", b.lines[len(b.lines)-1], err)
			}
			for i, r := range results {
				switch {
				case r.Err != nil:
					b.rejected = append(b.rejected, RowError{Line: b.lines[i], Errors: fieldErrors(rowErrors(r.Err))})
				case r.Existed:
					existing++
				default:
					created++
				}
				last = max(last, r.Seq)
			}
			slices.SortFunc(b.rejected, func(a, b RowError) int { return int(a.Line - b.Line) })
		} else if j.DryRun {
			created = int64(len(b.rows)) // would be created
		}
		var written int64
		stored := j.Stored
		for _, e := range b.rejected {
			if stored >= MaxStoredErrors {
				break
			}
			line, _ := json.Marshal(e)
			n, err := errFile.Write(append(line, '\n'))
			if err != nil {
				return fmt.Errorf("write the errors file: %w", err)
			}
			written += int64(n)
			stored++
		}
		elapsed := time.Since(tick).Seconds()
		tick = time.Now()
		if err := m.update(j, func(j *Job) {
			j.RowsRead += b.read
			j.RowsCreated += created
			j.RowsExisting += existing
			j.RowsRejected += int64(len(b.rejected))
			j.BytesRead = b.offset
			j.ErrorsBytes += written
			j.Stored = stored
			j.LastSequence = max(j.LastSequence, last)
			j.RunSeconds += elapsed
		}); err != nil {
			return err
		}
	}
	if err := <-readErr; err != nil {
		return err
	}
	return nil
}

// rowErrors are the field errors of a row's failed create.
func rowErrors(err error) []fault.FieldError {
	if fs := fault.Fields(err); len(fs) > 0 {
		return fs
	}
	fe := fault.Of(err)
	msg := "could not be created"
	if fe != nil && fe.Message != "" {
		msg = fe.Message
	}
	return []fault.FieldError{{Field: "row", Message: msg}}
}

func (m *Manager) rows(f io.Reader, j *Job) (Reader, error) {
	if j.Format == FormatCSV {
		return NewCSV(f, j.Mapping)
	}
	return NewNDJSON(f, j.Mapping), nil
}

// count reads the upload once, counting the rows (so that progress has a
// total), and stops on a file that cannot be read as rows.
func (m *Manager) count(ctx context.Context, j *Job) (int64, error) {
	f, err := os.Open(m.path(j.ID, ".upload"))
	if err != nil {
		return 0, fmt.Errorf("open the upload: %w", err)
	}
	defer f.Close()
	rd, err := m.rows(f, j)
	if err != nil {
		return 0, err
	}
	var n int64
	for {
		if n%10_000 == 0 && ctx.Err() != nil {
			return n, ctx.Err()
		}
		_, err := rd.Next()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
	}
}
