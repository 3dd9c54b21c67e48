// Package mongodb is the production read model: a readmodel.Store in the
// MongoDB collections `customers`, `contacts`, `contact_links`, `activities`
// and `timeline`, with the seed's schema and
// indexes, sort keys for every order of List and ListContacts, and a
// portable search index (an indexed array of word prefixes queried with
// $all), so that it behaves identically on MongoDB 6+ and on FerretDB 1.24,
// which has no text indexes, $facet, transactions or collations.
//
// Every document write is guarded by the document's stream sequence (an
// insert of a new document, or a replace filtered on a lower stored
// sequence), so writes are idempotent and never regress, also with several
// projectors at once. The projector's checkpoint is a special document of
// the customers collection, so that a rebuild's renameCollection swaps the
// customers and the checkpoint together (the contacts, the links, the
// timeline and the activities are renamed just before, see Swap).
//
// A Store is safe for concurrent use.
package mongodb

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"
	"go.mongodb.org/mongo-driver/v2/x/mongo/driver/topology"

	"crm/internal/fault"
	"crm/internal/readmodel"
)

// Collection is the name of the live read model's collection of customers,
// which also holds the checkpoint.
const Collection = "customers"

// ContactsCollection is the name of the live read model's collection of
// contacts (see contacts.go).
const ContactsCollection = "contacts"

// LinksCollection is the name of the live read model's collection of
// contact links (see links.go): one document per (customer, contact) ever
// linked, tombstones (ended) included.
const LinksCollection = "contact_links"

// ActivitiesCollection is the name of the live read model's collection of
// activities (see activities.go), tombstones included.
const ActivitiesCollection = "activities"

// TimelineCollection is the name of the live read model's collection of
// the customers' timelines (see activities.go): one entry per customer
// event and per live activity.
const TimelineCollection = "timeline"

// Timeouts applied when neither the URI nor the caller's context sets one.
const (
	defaultServerSelectionTimeout = 10 * time.Second
	defaultConnectTimeout         = 10 * time.Second
	// defaultOpTimeout bounds one operation whose context has no deadline,
	// so that an unresponsive server turns into ErrUnavailable instead of a
	// hang.
	defaultOpTimeout = 60 * time.Second
)

// Store is the MongoDB read model. It is safe for concurrent use.
type Store struct {
	client *mongo.Client
	db     *mongo.Database
	closed atomic.Bool

	searchFew   int64 // see defaultSearchFew; tests lower it
	searchChunk int   // candidates a tier query reads at least at a time
}

var _ readmodel.Store = (*Store)(nil)

// Open connects to the MongoDB deployment at uri (majority write concern,
// primary reads, whatever the URI says about them), checks that it answers
// and creates the indexes of the collections of database (customers,
// contacts, contact links, activities, timeline) if they are missing. It
// returns an error wrapping readmodel.ErrUnavailable when the server cannot
// be reached. The URI is never part of an error or a log.
func Open(ctx context.Context, uri, database string) (*Store, error) {
	if database == "" {
		return nil, errors.New("readmodel/mongodb: empty database name")
	}
	opts := options.Client().ApplyURI(uri)
	// Read-your-writes rests on reading what the projector wrote and its
	// checkpoint from the primary; majority makes a written document
	// survive a failover, so a checkpoint never gets ahead of its documents.
	opts.SetWriteConcern(writeconcern.Majority())
	opts.SetReadPreference(readpref.Primary())
	if opts.ServerSelectionTimeout == nil {
		opts.SetServerSelectionTimeout(defaultServerSelectionTimeout)
	}
	if opts.ConnectTimeout == nil {
		opts.SetConnectTimeout(defaultConnectTimeout)
	}
	if opts.AppName == nil {
		opts.SetAppName("crm-readmodel")
	}
	client, err := mongo.Connect(opts)
	if err != nil {
		return nil, fmt.Errorf("readmodel/mongodb: connect: %w", err)
	}
	s := &Store{client: client, db: client.Database(database), searchFew: defaultSearchFew, searchChunk: 64}
	if err := s.Ping(ctx); err != nil {
		s.Close()
		return nil, err
	}
	octx, cancel := opContext(ctx)
	defer cancel()
	if err := createIndexes(octx, s.live()); err != nil {
		err = s.fail("create indexes", err)
		s.Close()
		return nil, err
	}
	if err := backfillRankTerms(ctx, s.live().c); err != nil {
		err = s.fail("add rankTerms", err)
		s.Close()
		return nil, err
	}
	return s, nil
}

// backfillRankTerms gives the live documents written before rankTerms
// existed their match classes, computed from the tokens they store, a
// thousand at a time (each batch within the operation timeout). An update
// applies only while the field is still missing, so a newer write of the
// document, which carries it, always wins. The field is looked up as null
// (which matches a missing field), which the rankTerms index answers: once
// every document has it, an Open finds none at once.
func backfillRankTerms(ctx context.Context, c *mongo.Collection) error {
	missing := bson.D{{Key: "rankTerms", Value: nil}, {Key: "deleted", Value: false}}
	for {
		octx, cancel := opContext(ctx)
		n, err := func() (int, error) {
			cur, err := c.Find(octx, missing, options.Find().SetProjection(hitProjection).SetLimit(1000))
			if err != nil {
				return 0, err
			}
			var models []mongo.WriteModel
			for cur.Next(octx) {
				var h hit
				if err := cur.Decode(&h); err != nil {
					cur.Close(octx)
					return 0, err
				}
				models = append(models, mongo.NewUpdateOneModel().
					SetFilter(bson.D{{Key: "_id", Value: h.ID}, {Key: "rankTerms", Value: nil}}).
					SetUpdate(bson.D{{Key: "$set", Value: bson.D{{Key: "rankTerms", Value: nonNil(rankTerms(h.terms()))}}}}))
			}
			if err := cur.Err(); err != nil {
				cur.Close(octx)
				return 0, err
			}
			cur.Close(octx)
			if len(models) == 0 {
				return 0, nil
			}
			_, err = c.BulkWrite(octx, models, options.BulkWrite().SetOrdered(false))
			return len(models), err
		}()
		cancel()
		if err != nil || n == 0 {
			return err
		}
	}
}

// Ping reports whether the primary answers.
func (s *Store) Ping(ctx context.Context) error {
	if s.closed.Load() {
		return s.fail("ping", errClosed)
	}
	ctx, cancel := opContext(ctx)
	defer cancel()
	return s.fail("ping", s.client.Ping(ctx, readpref.Primary()))
}

// Close disconnects; a rebuild in progress is left in its collection (a
// later Rebuild drops it once it is stale).
func (s *Store) Close() error {
	if s.closed.Swap(true) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := s.client.Disconnect(ctx); err != nil {
		return fmt.Errorf("readmodel/mongodb: close: %w", err)
	}
	return nil
}

// live returns the live collections. They are looked up by name on every
// call, so after a Swap the renamed collections are the live ones.
func (s *Store) live() coll {
	return coll{s: s, c: s.db.Collection(Collection), contacts: s.db.Collection(ContactsCollection),
		links: s.db.Collection(LinksCollection), activities: s.db.Collection(ActivitiesCollection),
		timeline: s.db.Collection(TimelineCollection)}
}

// opContext bounds ctx by defaultOpTimeout unless it has a deadline already.
func opContext(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, defaultOpTimeout)
}

var errClosed = errors.New("store closed")

// fail wraps err with the operation; errors meaning that the deployment
// cannot be used right now (closed, unreachable, timed out, no primary)
// also wrap readmodel.ErrUnavailable so that callers may retry or report
// 503 without looking at the driver's message.
func (s *Store) fail(op string, err error) error {
	if err == nil {
		return nil
	}
	if fault.Of(err) != nil { // classified already (a lost lease, say)
		return fmt.Errorf("mongodb %s: %w", op, err)
	}
	if unavailable(err) || s.closed.Load() {
		return fmt.Errorf("%w: mongodb %s: %w", readmodel.ErrUnavailable, op, err)
	}
	return fmt.Errorf("%w: mongodb %s: %w", readmodel.ErrInternal, op, err)
}

// Server error codes of a deployment that is failing over or shutting down:
// the operation may succeed when retried.
var transientCodes = []int{
	6,     // HostUnreachable
	7,     // HostNotFound
	89,    // NetworkTimeout
	91,    // ShutdownInProgress
	189,   // PrimarySteppedDown
	262,   // ExceededTimeLimit
	9001,  // SocketException
	10107, // NotWritablePrimary
	11600, // InterruptedAtShutdown
	11602, // InterruptedDueToReplStateChange
	13435, // NotPrimaryNoSecondaryOk
	13436, // NotPrimaryOrSecondary
}

func unavailable(err error) bool {
	if errors.Is(err, errClosed) || errors.Is(err, mongo.ErrClientDisconnected) ||
		mongo.IsTimeout(err) || mongo.IsNetworkError(err) {
		return true
	}
	var (
		sse topology.ServerSelectionError
		ce  topology.ConnectionError
	)
	if errors.As(err, &sse) || errors.As(err, &ce) {
		return true
	}
	var se mongo.ServerError
	if errors.As(err, &se) {
		if se.HasErrorLabel("RetryableWriteError") || se.HasErrorLabel("TransientTransactionError") {
			return true
		}
		for _, code := range transientCodes {
			if se.HasErrorCode(code) {
				return true
			}
		}
	}
	return false
}

// hasCode reports whether err is a server error with one of codes.
func hasCode(err error, codes ...int) bool {
	var se mongo.ServerError
	if !errors.As(err, &se) {
		return false
	}
	for _, c := range codes {
		if se.HasErrorCode(c) {
			return true
		}
	}
	return false
}

// Index names and keys. Every index has the driver's default name
// (field_1_other_-1), so that opening a database whose indexes the seed
// created is a no-op.
const textIndexName = "customer_search_text"

func indexModels() []mongo.IndexModel {
	models := []mongo.IndexModel{
		// The seed's indexes. customerCode stays unique with tombstones,
		// because codes are never reused.
		{Keys: asc("customerId"), Options: options.Index().SetUnique(true)},
		{Keys: asc("customerCode"), Options: options.Index().SetUnique(true)},
		{Keys: asc("email")},
		{Keys: asc("phone")},
		{Keys: asc("company")},
		{Keys: asc("type")},
		{Keys: asc("status")},
		{Keys: asc("createdBy")},
		{Keys: asc("tags")},
		{Keys: bson.D{{Key: "createdAt", Value: -1}}},
		// The orders of List (walked backwards for descending), ties
		// broken by the code's number.
		{Keys: asc("deleted", "createdAt", "createdAtNs", "codeNum")},
		{Keys: asc("deleted", "updatedAt", "updatedAtNs", "codeNum")},
		{Keys: asc("deleted", "nameKey", "codeNum")},
		{Keys: asc("emailKey", "deleted")},
		{Keys: asc("externalId", "deleted")},
		// Duplicates: the members of a key, newest first; the clusters,
		// newest first, of every kind or one.
		{Keys: asc("dupKeys", "createdAt", "createdAtNs", "codeNum")},
		{Keys: asc("clusterNewest", "clusterNewestNs", "clusterKind", "clusterKey")},
		{Keys: asc("clusterKind", "clusterNewest", "clusterNewestNs", "clusterKey")},
		{Keys: asc("deleted", "codeNum")},
		// The filters of List in the default order.
		{Keys: asc("deleted", "status", "createdAt", "createdAtNs", "codeNum")},
		{Keys: asc("deleted", "type", "createdAt", "createdAtNs", "codeNum")},
		{Keys: asc("deleted", "createdBy", "createdAt", "createdAtNs", "codeNum")},
		{Keys: asc("deleted", "tags", "createdAt", "createdAtNs", "codeNum")},
		// The portable search index (multikey), and the match classes in
		// name order that Search ranks tier by tier.
		{Keys: asc("searchTerms")},
		{Keys: asc("rankTerms", "nameKey", "codeNum")},
	}
	return named(models)
}

// contactIndexModels returns the indexes of the contacts collection: the
// orders of ListContacts (walked backwards for descending), ties broken by
// _id, without a filter and with the tag filter (multikey); the email
// filter; the search in name order (multikey).
func contactIndexModels() []mongo.IndexModel {
	return named([]mongo.IndexModel{
		{Keys: asc("deleted", "nameKey", "_id")},
		{Keys: asc("deleted", "createdAt", "createdAtNs", "_id")},
		{Keys: asc("deleted", "updatedAt", "updatedAtNs", "_id")},
		{Keys: asc("tags", "deleted", "nameKey", "_id")},
		{Keys: asc("tags", "deleted", "createdAt", "createdAtNs", "_id")},
		{Keys: asc("tags", "deleted", "updatedAt", "updatedAtNs", "_id")},
		{Keys: asc("emailKey", "deleted")},
		{Keys: asc("searchTerms", "deleted", "nameKey", "_id")},
	})
}

// asc returns the ascending index keys of fields.
func asc(fields ...string) bson.D {
	d := make(bson.D, len(fields))
	for i, k := range fields {
		d[i] = bson.E{Key: k, Value: 1}
	}
	return d
}

// named gives each of models the default name of its keys.
func named(models []mongo.IndexModel) []mongo.IndexModel {
	for i, m := range models {
		if m.Options == nil {
			m.Options = options.Index()
		}
		models[i].Options = m.Options.SetName(indexName(m.Keys.(bson.D)))
	}
	return models
}

// createIndexes creates the indexes of the collections of c that are
// missing (by name), and the seed's text index of the customers where the
// server supports text indexes and the collection has none yet.
func createIndexes(ctx context.Context, c coll) error {
	if _, err := ensureIndexes(ctx, c.contacts, contactIndexModels()); err != nil {
		return err
	}
	if _, err := ensureIndexes(ctx, c.links, linkIndexModels()); err != nil {
		return err
	}
	if _, err := ensureIndexes(ctx, c.activities, activityIndexModels()); err != nil {
		return err
	}
	if _, err := ensureIndexes(ctx, c.timeline, timelineIndexModels()); err != nil {
		return err
	}
	hasText, err := ensureIndexes(ctx, c.c, indexModels())
	if err != nil || hasText { // ours, or the seed's under another name
		return err
	}
	_, err = c.c.Indexes().CreateOne(ctx, mongo.IndexModel{
		Keys:    bson.D{{Key: "name", Value: "text"}, {Key: "email", Value: "text"}, {Key: "company", Value: "text"}},
		Options: options.Index().SetName(textIndexName),
	})
	if err != nil && textIndexUnsupported(err) {
		return nil // FerretDB: search uses searchTerms anyway
	}
	return err
}

// ensureIndexes creates those of models that c lacks (by name) and reports
// whether c has a text index. Only missing ones are sent because FerretDB
// 1.24 drops the connection (a panic in its handler) when one
// createIndexes command repeats several existing indexes.
func ensureIndexes(ctx context.Context, c *mongo.Collection, models []mongo.IndexModel) (hasText bool, err error) {
	specs, err := c.Indexes().ListSpecifications(ctx)
	if err != nil && !hasCode(err, 26) { // NamespaceNotFound: no collection yet
		return false, err
	}
	have := make(map[string]bool, len(specs))
	for _, sp := range specs {
		have[sp.Name] = true
		if _, err := sp.KeysDocument.LookupErr("_fts"); err == nil {
			hasText = true // a collection has at most one
		}
	}
	var missing []mongo.IndexModel
	for _, m := range models {
		if !have[indexName(m.Keys.(bson.D))] {
			missing = append(missing, m)
		}
	}
	if len(missing) > 0 {
		if _, err := c.Indexes().CreateMany(ctx, missing); err != nil {
			return hasText, err
		}
	}
	return hasText, nil
}

// indexName returns the name the driver and the shell give an index of
// keys by default: field_direction pairs joined by underscores.
func indexName(keys bson.D) string {
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('_')
		}
		fmt.Fprintf(&b, "%s_%v", k.Key, k.Value)
	}
	return b.String()
}

// textIndexUnsupported reports whether err is a server's refusal of text
// indexes as such: FerretDB 1.24 parses index keys as 1/-1 only and answers
// a "text" key with IndexNotFound (27); NotImplemented (238) and
// CommandNotSupported (115) are the codes of the same refusal elsewhere.
func textIndexUnsupported(err error) bool { return hasCode(err, 27, 115, 238) }

// DropDatabase drops the store's whole database: for tests, and for an
// operator discarding a read model before a rebuild. The stream is untouched.
func (s *Store) DropDatabase(ctx context.Context) error {
	return s.fail("drop database", s.db.Drop(ctx))
}
