// Package readmodel defines the contract of the customers read model: what the
// projector writes and what the query endpoints read. Two adapters implement
// it (sqlite, the embedded default; mongodb, production) and one conformance
// suite (readmodeltest) proves they behave identically.
//
// Documents are Customer values as folded from the stream
// (customer.Evolve), including tombstones of deleted customers, so that a
// late or duplicate event can never resurrect or regress a document.
//
// Times keep the events' full precision: adapters return them exactly, to
// the nanosecond, in UTC, and sort by them exactly (SQLite stores Unix
// nanoseconds, exact from the year 1678 to 2262 and clamped beyond; MongoDB a
// BSON date, in milliseconds, plus the nanoseconds past it). The REST views
// round nothing either: they show milliseconds (the seed's format) by
// truncation.
//
// Rebuilds run one at a time per read model, across processes (see
// Store.Rebuild).
package readmodel

import (
	"context"
	"math"
	"time"

	"crm/internal/dedupe"
	"crm/internal/fault"
	"crm/internal/search"
)

// Errors returned by every adapter (sentinels, matched with errors.Is).
// Every other failure of an adapter is fault.Internal with the driver's
// error as its cause.
var (
	// ErrNotFound (fault.NotFound): no live customer with that id (missing
	// or deleted).
	ErrNotFound = fault.New(fault.NotFound, "customer not found")
	// ErrUnavailable (fault.Unavailable): the store cannot be reached; the
	// caller may retry.
	ErrUnavailable = fault.New(fault.Unavailable, "the read model is unavailable; retry later")
	// ErrRebuildBehind (fault.Conflict): Swap refused because the live read
	// model has applied events the rebuilt one has not; catch up and try
	// again.
	ErrRebuildBehind = fault.New(fault.Conflict, "the rebuilt read model is behind the live one")
	// ErrRebuildInProgress (fault.Conflict): Rebuild while another rebuild
	// of the same read model (from this process or another) holds the
	// rebuild lease.
	ErrRebuildInProgress = fault.New(fault.Conflict, "a rebuild of the read model is already in progress")
	// ErrRebuildLost (fault.Conflict): the rebuild's lease was taken over
	// by another rebuild after it went RebuildLease without writing; this
	// one can only be dropped.
	ErrRebuildLost = fault.New(fault.Conflict, "the rebuild was taken over by another one")
	// ErrInternal (fault.Internal) wraps every other failure of a store.
	ErrInternal = fault.New(fault.Internal, "unexpected read model error")
)

// Writer is what the projector needs.
type Writer interface {
	// Load returns the stored documents (tombstones included) of the given
	// ids; ids that have no document are absent from the map.
	Load(ctx context.Context, ids []string) (map[string]Customer, error)
	// Commit stores docs and advances the checkpoint to checkpoint. A
	// document replaces a stored one only if its Seq is higher, so writes are
	// idempotent and never regress, also with several projectors at once.
	// The checkpoint never moves backwards. Where the store can (SQLite),
	// documents and checkpoint are committed in one transaction.
	Commit(ctx context.Context, docs []Customer, checkpoint uint64) error
	// Checkpoint returns the stream sequence up to which every event has been
	// applied (0 when nothing was).
	Checkpoint(ctx context.Context) (uint64, error)
	ContactWriter
	ActivityWriter
}

// Reader is what the query endpoints need. Deleted customers are never
// returned, except by a List with Query.Deleted.
type Reader interface {
	// Get returns one live customer or ErrNotFound.
	Get(ctx context.Context, id string) (Customer, error)
	// List returns one page of customers matching the filters in q, in q's
	// order; with q.Deleted, of the deleted customers. q.Text is ignored.
	List(ctx context.Context, q Query) (Page, error)
	// Search returns one page of customers matching q.Text (every query word
	// is a prefix of a word of name, email, company or code) and the filters,
	// ranked by relevance, then name, then code.
	Search(ctx context.Context, q Query) (Page, error)
	// Export calls begin with the checkpoint of what it reads, then each
	// for every customer matching q's filters (or the trash, with
	// q.Deleted) in q's order; q's paging is ignored. It streams: memory
	// does not grow with the matches. An error of begin or each stops it
	// and is returned as is. SQLite reads one snapshot, exactly the
	// customers at the checkpoint; MongoDB one cursor, where a customer
	// changed meanwhile may show a newer state.
	Export(ctx context.Context, q Query, begin func(checkpoint uint64) error, each func(Customer) error) error
	// ByExternalID returns the customer whose external id is externalID
	// (exactly, as stored) as Get does: the live one, else a fault.Moved
	// error naming the survivor of a merged one, else ErrNotFound. The
	// command side keeps external ids unique among live and merged
	// customers.
	ByExternalID(ctx context.Context, externalID string) (Customer, error)
	// PossibleDuplicates returns the live customers other than id that
	// share a duplicate key (package dedupe) with keys: for each match kind
	// in dedupe.Matches order, up to limit (clamped to 1..MaxPerPage) of
	// them, newest (by CreatedAt) first, ties by code descending. A
	// customer sharing two keys is listed under each.
	PossibleDuplicates(ctx context.Context, id string, keys dedupe.Keys, limit int) ([]Duplicate, error)
	// Duplicates returns one page of the clusters of live customers that
	// share a duplicate key (two or more per cluster), of one match kind
	// (q.Match) or all, newest first: by the CreatedAt of each cluster's
	// newest member, ties by
	// match kind, then key, both descending.
	Duplicates(ctx context.Context, q ClusterQuery) (ClusterPage, error)
	ContactReader
	LinkReader
	ActivityReader
}

// Duplicate is a customer that shares a duplicate key with another.
type Duplicate struct {
	CustomerID string
	Match      string // dedupe.MatchEmail, …
}

// Cluster is a set of live customers sharing one duplicate key.
type Cluster struct {
	Match string // dedupe.MatchEmail, …
	Key   string // the shared key
	Size  int64  // the number of customers that share it
	// Customers are up to ClusterMembers of them, newest (by CreatedAt)
	// first, ties by code descending.
	Customers []Customer
}

// ClusterMembers is the most customers a Cluster lists.
const ClusterMembers = 20

// ClusterQuery selects one page of clusters: Page and PerPage as in Query;
// Match is a dedupe match kind, or "" for all.
type ClusterQuery struct {
	Page, PerPage int
	Match         string
}

// Bounds returns the limit and offset of q's page (see Query.Bounds).
func (q ClusterQuery) Bounds() (limit, offset int64, ok bool) {
	return Query{Page: q.Page, PerPage: q.PerPage}.Bounds()
}

// ClusterPage is one page of clusters and the number of clusters.
type ClusterPage struct {
	Items []Cluster
	Total int64
}

// Store is one read-model adapter.
type Store interface {
	Writer
	Reader
	// Rebuild starts a fresh, empty copy of the read model beside the live
	// one; queries keep being served from the live one until Swap.
	//
	// Rebuilds run one at a time per read model, across every process
	// that opens it: a rebuild holds a lease stored with the read model,
	// and Rebuild fails with ErrRebuildInProgress while another one holds
	// it. A rebuild renews its lease with every write; one that goes
	// RebuildLease without writing (its process died) may be taken over,
	// and the abandoned copy is dropped; the old holder's next call then
	// fails with ErrRebuildLost.
	Rebuild(ctx context.Context) (Rebuild, error)
	// ByEmail returns up to limit live customers whose email, in
	// customer.EmailKey form, is key (the upsert's look-up of customers from
	// before their email was claimed).
	ByEmail(ctx context.Context, key string, limit int) ([]Customer, error)
	// Scan returns up to limit documents, tombstones included, whose ids
	// sort after after ("" = from the first), in id order: keyset paging
	// over the whole read model, at a cost that does not grow with the
	// position (tools, exports). limit is clamped to 1..MaxScan.
	Scan(ctx context.Context, after string, limit int) ([]Customer, error)
	// Ping reports whether the store is reachable.
	Ping(ctx context.Context) error
	Close() error
}

// Rebuild is a read model being built from the stream beside the live one.
type Rebuild interface {
	Writer
	// Swap atomically replaces the live read model (documents, search index
	// and checkpoint) with this one. It returns ErrRebuildBehind (and swaps
	// nothing) when the live checkpoint is ahead of the rebuilt one, so that
	// a live projector never continues on a copy with a hole.
	Swap(ctx context.Context) error
	// Abort drops the copy.
	Abort(ctx context.Context) error
}

// MaxScan is the most documents one Scan returns.
const MaxScan = 10000

// RebuildLease is how long a rebuild may go without writing before another
// one may take its place.
const RebuildLease = 2 * time.Minute

// Sort fields of List.
const (
	SortCreatedAt    = "createdAt"
	SortUpdatedAt    = "updatedAt"
	SortName         = "name"
	SortCustomerCode = "customerCode"
)

// Sorts lists the sort fields of List (each adapter maps every one to its
// index; the HTTP layer accepts exactly these).
var Sorts = []string{SortName, SortCustomerCode, SortCreatedAt, SortUpdatedAt}

// Query selects one page of customers.
type Query struct {
	Page    int // 1-based
	PerPage int // 1..100

	// Filters (exact match; empty = any).
	Status    string
	Type      string
	Tag       string
	CreatedBy string

	// Sort is one of the Sort constants (default createdAt); Desc reverses
	// it. Ties are broken by customer code in the same direction, so paging
	// never repeats or skips a customer. Search ignores Sort.
	Sort string
	Desc bool

	// Text is the search query (Search only).
	Text string
	// ExactTotal (Search only) is how many matches are counted exactly;
	// with more, Total is this bound and Page.TotalAtLeast is set. 0 means
	// search.MaxExactTotal.
	ExactTotal int64

	// Deleted (List only) lists the deleted customers instead of the live
	// ones (the trash, for those who may restore them); the other filters
	// must then be empty.
	Deleted bool

	// After, when set, is keyset paging: the page is the PerPage matches
	// that follow this position in the query's order (Page is ignored), at
	// a cost that does not grow with the position. A customer whose place
	// in the order does not change (its sort key; for Search its score and
	// name) is never repeated or skipped by pages read one after the
	// other, whatever else is written meanwhile.
	After *Position
}

// Position is a place in the order of List or Search, taken from the last
// customer of a page (ListPosition, SearchPosition).
type Position struct {
	Score int       // Search: the relevance (search.Score)
	Time  time.Time // List by createdAt or updatedAt
	Name  string    // List by name and Search: search.Fold(name)
	Code  int64     // search.CodeNumber(code): the tie-breaker of every order
}

// ListPosition returns c's position in a List sorted by sort.
func ListPosition(c Customer, sort string) Position {
	p := Position{Code: search.CodeNumber(c.Code)}
	switch sort {
	case "", SortCreatedAt:
		p.Time = c.CreatedAt
	case SortUpdatedAt:
		p.Time = c.UpdatedAt
	case SortName:
		p.Name = search.Fold(c.Name)
	}
	return p
}

// SearchPosition returns c's position in a Search for words
// (search.ParseQuery).
func SearchPosition(c Customer, words []string) Position {
	return Position{
		Score: search.Score(words, search.NewDocTerms(c.Name, c.Company, c.Email, c.Code, c.AbsorbedCodes()...)),
		Name:  search.Fold(c.Name),
		Code:  search.CodeNumber(c.Code),
	}
}

// Page is one page of results and the total number of matches.
type Page struct {
	Items []Customer
	Total int64
	// TotalAtLeast (Search): more than Query.TotalBound matches; Total is
	// that bound, a lower bound of the number of matches.
	TotalAtLeast bool
	// More: matches follow this page (List: with Query.After; Search:
	// always).
	More bool
}

// TotalBound returns how many matches Search counts exactly for q (see
// Query.ExactTotal).
func (q Query) TotalBound() int64 {
	if q.ExactTotal > 0 {
		return q.ExactTotal
	}
	return search.MaxExactTotal
}

// Paging defaults of every adapter: a Page below 1 is the first page;
// PerPage is clamped to 1..MaxPerPage, DefaultPerPage when unset.
const (
	DefaultPerPage = 20
	MaxPerPage     = 100
)

// Bounds returns the limit and offset of q's page; ok is false for a page so
// far that its offset overflows (it is past the end).
func (q Query) Bounds() (limit, offset int64, ok bool) {
	limit = int64(q.PerPage)
	switch {
	case limit <= 0:
		limit = DefaultPerPage
	case limit > MaxPerPage:
		limit = MaxPerPage
	}
	page := int64(max(q.Page, 1))
	if page-1 > math.MaxInt64/limit {
		return limit, 0, false
	}
	return limit, (page - 1) * limit, true
}
