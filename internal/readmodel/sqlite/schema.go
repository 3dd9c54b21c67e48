package sqlite

import (
	"strconv"
	"strings"
)

// tables names one complete copy of the read model: the live one, or the
// one a Rebuild fills beside it until Swap renames it into place.
type tables struct {
	customers  string // one row per customer, tombstones included
	tags       string // (tag, customer) of live customers: the tag filter
	fts        string // FTS5 index of the search tokens of live customers
	checkpoint string // one row: the stream sequence applied, and the generation
	counts     string // live customers per (status, type, created_by)
	tagCounts  string // live customers per (tag, status, type, created_by)
	dups       string // clusters of live customers sharing a duplicate key

	contacts      string // one row per contact, tombstones included
	contactTags   string // (tag, sort keys, contact) of live contacts: the tag filter in every order
	contactFts    string // FTS5 index of the search tokens of live contacts
	contactCounts string // live contacts per tag ('' = all of them)
	links         string // (customer, contact) links, ended ones as tombstones
	activities    string // one row per activity, tombstones included
	timeline      string // the customers' timelines: their events and their live activities
}

var (
	live = tables{
		customers:  "customers",
		tags:       "customer_tags",
		fts:        "customers_fts",
		checkpoint: "checkpoint",
		counts:     "customer_counts",
		tagCounts:  "customer_tag_counts",
		dups:       "customer_duplicates",

		contacts:      "contacts",
		contactTags:   "contact_tags",
		contactFts:    "contacts_fts",
		contactCounts: "contact_counts",
		links:         "contact_links",
		activities:    "activities",
		timeline:      "timeline",
	}
	next = tables{
		customers:  "customers_rebuild",
		tags:       "customer_tags_rebuild",
		fts:        "customers_fts_rebuild",
		checkpoint: "checkpoint_rebuild",
		counts:     "customer_counts_rebuild",
		tagCounts:  "customer_tag_counts_rebuild",
		dups:       "customer_duplicates_rebuild",

		contacts:      "contacts_rebuild",
		contactTags:   "contact_tags_rebuild",
		contactFts:    "contacts_fts_rebuild",
		contactCounts: "contact_counts_rebuild",
		links:         "contact_links_rebuild",
		activities:    "activities_rebuild",
		timeline:      "timeline_rebuild",
	}
)

func (t tables) all() []string {
	return []string{t.customers, t.tags, t.fts, t.checkpoint, t.counts, t.tagCounts, t.dups, t.contacts, t.contactTags, t.contactFts, t.contactCounts, t.links,
		t.activities, t.timeline}
}

// schema returns the statements that create the tables t. gen, the
// generation of the copy, makes the names of its indexes unique, because an
// index keeps its name when Swap renames its table.
//
// customers has one column per field of the document, plus sort and search
// keys: code_num (the number of the code, search.CodeNumber), name_key
// (search.Fold(name)), the duplicate keys (package dedupe: dup_email,
// dup_phone, dup_name; customer_duplicates keeps the clusters), and the
// search tokens (search.Tokens) of name,
// company and email and the folded code, space-joined with a space before
// and after, from which Search computes search.Score in SQL. Times are integer Unix nanoseconds (UTC),
// NULL for the zero time, so sorting on them is exact. deleted = 1 marks a
// tombstone: it stays so that a late event cannot resurrect the customer,
// but it is in neither the tag table nor the search index. id is an
// explicit INTEGER PRIMARY KEY because the tag table and the search index
// refer to it and VACUUM may renumber an implicit rowid.
//
// The search index is a contentless FTS5 table (the tokens are stored in
// customers already) with the ascii tokenizer: the tokens are pre-folded
// words of letters and digits joined by spaces, and the ascii tokenizer
// splits only on ASCII separators and never alters non-ASCII text, so FTS5
// sees exactly the tokens of package search and its prefix queries match
// exactly search's rule. Each token carries a mark of its field and the
// filters are tokens too (indexText in search.go), so detail=none (rowids
// only) is all that Search needs; the rowid is the customer's search id
// (sid), which follows the name order (search.go). The prefix indexes (a
// mark and one to six letters) make every word of up to six letters one
// ready doclist; a longer word's prefix query merges the doclists of every
// token starting with it first (at 1,000,000 customers with up to three
// letters indexed, "john smith" spent 133 of its 230 ms there). They cost
// the projector 5-25% more CPU per document than '2 3 4' (BenchmarkCommit);
// at a million customers searches won. (At 100,000, with the index of
// before, up to 8 letters cost the projector half as much CPU again per
// document and writes won.)
func schema(t tables, gen int64) []string {
	return append(customerSchema(t, gen), contactSchema(t, gen)...)
}

// contactSchema returns the statements that create the contact tables of
// t. contacts has one column per field, name_key (search.Fold(name)) and
// email_key (lower case) for the order and the filter, times in Unix
// nanoseconds as for customers. contact_tags repeats the sort keys of
// each live contact once per tag, so that a tag filter reads its page in
// any order from one index range (a join would sort every match);
// contact_counts keeps the number of live contacts per tag and in all
// (tag ”), so that a list's total is one row. contacts_fts is the search
// index of the live contacts, built as the customers' (their marked
// tokens: "n" name, "t" title, "e" email, and a tag facet per tag), its
// rowid the contact's search id (sid: the bucket of its name, then a
// slot), so that a search reads its matches in name order
// (contactsearch.go). Its prefix indexes reach a mark and 11 letters (the
// customers' stop at 6): a longer query word's prefix query merges the
// doclists of every token starting with it before the first match, and a
// common one ("example" of every email) cost a search 0.56 s at 1,000,000
// contacts with 6, 4 ms with 11 at 100,000, for no measurable cost to the
// projector (BenchmarkContactSearch, docs/PERFORMANCE.md).
func contactSchema(t tables, gen int64) []string {
	g := "_g" + strconv.FormatInt(gen, 10)
	ix := func(table, name, cols string) string {
		return "CREATE INDEX " + name + g + " ON " + table + " (" + cols + ")"
	}
	return []string{
		`CREATE TABLE ` + t.contacts + ` (
			id         INTEGER PRIMARY KEY,
			contact_id TEXT    NOT NULL UNIQUE,
			name       TEXT    NOT NULL,
			name_key   TEXT    NOT NULL,
			email      TEXT    NOT NULL,
			email_key  TEXT    NOT NULL,
			phone      TEXT    NOT NULL,
			title      TEXT    NOT NULL,
			notes      TEXT    NOT NULL,
			tags       TEXT    NOT NULL, -- JSON array
			created_by TEXT    NOT NULL,
			created_at INTEGER,          -- Unix ns UTC; NULL = zero time
			updated_by TEXT    NOT NULL,
			updated_at INTEGER,
			version    INTEGER NOT NULL,
			seq        INTEGER NOT NULL,
			deleted    INTEGER NOT NULL,
			sid        INTEGER           -- search id of a live contact; NULL for a tombstone
		)`,
		ix(t.contacts, "contacts_name", "deleted, name_key, contact_id"),
		ix(t.contacts, "contacts_sid", "sid, name_key, contact_id"),
		`CREATE VIRTUAL TABLE ` + t.contactFts + ` USING fts5(
			terms,
			content='', contentless_delete=1, detail=none,
			tokenize='ascii', prefix='2 3 4 5 6 7 8 9 10 11 12'
		)`,
		ix(t.contacts, "contacts_created", "deleted, created_at, contact_id"),
		ix(t.contacts, "contacts_updated", "deleted, updated_at, contact_id"),
		"CREATE INDEX contacts_email_key" + g + " ON " + t.contacts + " (email_key) WHERE deleted = 0 AND email_key != ''",
		`CREATE TABLE ` + t.contactTags + ` (
			tag        TEXT    NOT NULL,
			contact    INTEGER NOT NULL, -- contacts.id
			contact_id TEXT    NOT NULL,
			name_key   TEXT    NOT NULL,
			created_at INTEGER,
			updated_at INTEGER,
			PRIMARY KEY (tag, contact)
		) WITHOUT ROWID`,
		ix(t.contactTags, "contact_tags_name", "tag, name_key, contact_id"),
		ix(t.contactTags, "contact_tags_created", "tag, created_at, contact_id"),
		ix(t.contactTags, "contact_tags_updated", "tag, updated_at, contact_id"),
		ix(t.contactTags, "contact_tags_contact", "contact"),
		`CREATE TABLE ` + t.contactCounts + ` (
			tag TEXT    NOT NULL PRIMARY KEY,
			n   INTEGER NOT NULL
		) WITHOUT ROWID`,
		// A customer's links by its id (the key), a contact's by the index.
		`CREATE TABLE ` + t.links + ` (
			customer_id TEXT    NOT NULL,
			contact_id  TEXT    NOT NULL,
			role        TEXT    NOT NULL,
			is_primary  INTEGER NOT NULL,
			from_date   TEXT    NOT NULL, -- YYYY-MM-DD, '' = open
			to_date     TEXT    NOT NULL,
			linked_by   TEXT    NOT NULL,
			linked_at   INTEGER,
			seq         INTEGER NOT NULL,
			ended       INTEGER NOT NULL,
			PRIMARY KEY (customer_id, contact_id)
		) WITHOUT ROWID`,
		ix(t.links, "contact_links_contact", "contact_id, customer_id"),
		`CREATE TABLE ` + t.activities + ` (
			id          INTEGER PRIMARY KEY,
			activity_id TEXT    NOT NULL UNIQUE,
			customer_id TEXT    NOT NULL,
			type        TEXT    NOT NULL,
			occurred_at INTEGER,
			subject     TEXT    NOT NULL,
			body        TEXT    NOT NULL,
			contact_ids TEXT    NOT NULL, -- JSON array
			outcome     TEXT    NOT NULL,
			due_at      INTEGER,          -- NULL: none
			done        INTEGER NOT NULL,
			created_by  TEXT    NOT NULL,
			created_at  INTEGER,
			updated_by  TEXT    NOT NULL,
			updated_at  INTEGER,
			version     INTEGER NOT NULL,
			seq         INTEGER NOT NULL,
			deleted     INTEGER NOT NULL
		)`,
		// A customer's timeline, newest first, is one range of its key:
		// its events (key 'e:<event id>', data holds the entry as JSON)
		// and its live activities (key 'a:<activity id>', activity the
		// row of activities).
		`CREATE TABLE ` + t.timeline + ` (
			customer_id TEXT    NOT NULL,
			at          INTEGER NOT NULL, -- Unix ns
			key         TEXT    NOT NULL,
			kind        TEXT    NOT NULL,
			activity    INTEGER,          -- activities.id, NULL for an event
			data        TEXT    NOT NULL, -- an event's entry (JSON), '' for an activity
			PRIMARY KEY (customer_id, key)
		) WITHOUT ROWID`,
		ix(t.timeline, "timeline_order", "customer_id, at, key"),
	}
}

// customerSchema returns the statements that create the customer tables
// of t (and the checkpoint).
func customerSchema(t tables, gen int64) []string {
	g := "_g" + strconv.FormatInt(gen, 10)
	ix := func(name, cols string) string {
		return "CREATE INDEX " + "customers_" + name + g + " ON " + t.customers + " (" + cols + ")"
	}
	return []string{
		`CREATE TABLE ` + t.customers + ` (
			id            INTEGER PRIMARY KEY,
			customer_id   TEXT    NOT NULL UNIQUE,
			customer_code TEXT    NOT NULL,
			code_num      INTEGER NOT NULL,
			name          TEXT    NOT NULL,
			name_key      TEXT    NOT NULL,
			email         TEXT    NOT NULL,
			email_key     TEXT    NOT NULL, -- customer.EmailKey(email), '' when unset
			phone         TEXT    NOT NULL,
			company       TEXT    NOT NULL,
			street        TEXT    NOT NULL,
			city          TEXT    NOT NULL,
			state         TEXT    NOT NULL,
			country       TEXT    NOT NULL,
			postal_code   TEXT    NOT NULL,
			type          TEXT    NOT NULL,
			status        TEXT    NOT NULL,
			notes         TEXT    NOT NULL,
			tags          TEXT    NOT NULL, -- JSON array
			external_id   TEXT    NOT NULL, -- '' when unset
			created_by    TEXT    NOT NULL,
			created_at    INTEGER,          -- Unix ns UTC; NULL = zero time
			updated_at    INTEGER,
			version       INTEGER NOT NULL,
			seq           INTEGER NOT NULL,
			deleted       INTEGER NOT NULL, -- 1 = hidden: a tombstone, or merged into merged_into
			merged_into   TEXT    NOT NULL, -- the survivor's id while merged, else ''
			absorbed      TEXT    NOT NULL, -- JSON [[id, code], …] of the customers merged into this one
			dup_email     TEXT    NOT NULL, -- the duplicate keys (package dedupe), '' for none
			dup_phone     TEXT    NOT NULL,
			dup_name      TEXT    NOT NULL,
			name_terms    TEXT    NOT NULL, -- search tokens, padded: ' john smith '
			company_terms TEXT    NOT NULL,
			email_terms   TEXT    NOT NULL,
			code_key      TEXT    NOT NULL, -- the folded code and the absorbed ones, padded: ' c001 c007 '
			sid           INTEGER           -- the search id (search.go), NULL when hidden
		)`,
		// Sorts (ties by code), each also serving its filter-free count.
		ix("created", "deleted, created_at, code_num"),
		ix("updated", "deleted, updated_at, code_num"),
		ix("name", "deleted, name_key, code_num"),
		ix("code", "deleted, code_num"),
		// Filters, in the default order, also counting their matches.
		ix("status", "deleted, status, created_at, code_num"),
		ix("type", "deleted, type, created_at, code_num"),
		ix("created_by", "deleted, created_by, created_at, code_num"),
		// Upserts by email (live customers only).
		"CREATE INDEX customers_email_key" + g + " ON " + t.customers + " (email_key) WHERE deleted = 0 AND email_key != ''",
		// Duplicates of live customers: warnings and cluster members,
		// newest first.
		"CREATE INDEX customers_dup_email" + g + " ON " + t.customers + " (dup_email, deleted, created_at, code_num) WHERE dup_email != ''",
		"CREATE INDEX customers_dup_phone" + g + " ON " + t.customers + " (dup_phone, deleted, created_at, code_num) WHERE dup_phone != ''",
		"CREATE INDEX customers_dup_name" + g + " ON " + t.customers + " (dup_name, deleted, created_at, code_num) WHERE dup_name != ''",
		// The search index's rowids, with the name order (Search sorts a
		// bucket of candidates from this index alone). Unique: the
		// writer takes a sid only after finding it free (searchID).
		"CREATE INDEX customers_sid" + g + " ON " + t.customers + " (sid, name_key, code_num)",
		// Look-ups by external id.
		"CREATE INDEX customers_external_id" + g + " ON " + t.customers + " (external_id) WHERE external_id != ''",
		`CREATE TABLE ` + t.tags + ` (
			tag      TEXT    NOT NULL,
			customer INTEGER NOT NULL,
			PRIMARY KEY (tag, customer)
		) WITHOUT ROWID`,
		`CREATE VIRTUAL TABLE ` + t.fts + ` USING fts5(
			terms,
			content='', contentless_delete=1, detail=none,
			tokenize='ascii', prefix='2 3 4 5 6 7'
		)`,
		`CREATE TABLE ` + t.checkpoint + ` (
			id         INTEGER PRIMARY KEY CHECK (id = 1),
			seq        INTEGER NOT NULL,
			generation INTEGER NOT NULL
		)`,
		`INSERT INTO ` + t.checkpoint + ` (id, seq, generation) VALUES (1, 0, ` + strconv.FormatInt(gen, 10) + `)`,
		// The number of live customers per combination of filter values,
		// kept by Commit: List's Total sums a few of these rows.
		`CREATE TABLE ` + t.counts + ` (
			status     TEXT    NOT NULL,
			type       TEXT    NOT NULL,
			created_by TEXT    NOT NULL,
			n          INTEGER NOT NULL,
			PRIMARY KEY (status, type, created_by)
		) WITHOUT ROWID`,
		// The clusters of live customers sharing a duplicate key (two or
		// more), kept by Commit; newest is the newest member's created_at.
		`CREATE TABLE ` + t.dups + ` (
			kind   TEXT    NOT NULL,
			key    TEXT    NOT NULL,
			n      INTEGER NOT NULL,
			newest INTEGER NOT NULL,
			PRIMARY KEY (kind, key)
		) WITHOUT ROWID`,
		"CREATE INDEX customer_duplicates_newest" + g + " ON " + t.dups + " (newest, kind, key)",
		"CREATE INDEX customer_duplicates_kind_newest" + g + " ON " + t.dups + " (kind, newest, key)",
		`CREATE TABLE ` + t.tagCounts + ` (
			tag        TEXT    NOT NULL,
			status     TEXT    NOT NULL,
			type       TEXT    NOT NULL,
			created_by TEXT    NOT NULL,
			n          INTEGER NOT NULL,
			PRIMARY KEY (tag, status, type, created_by)
		) WITHOUT ROWID`,
	}
}

// dropStatements drops the tables t (their indexes go with them).
func dropStatements(t tables) []string {
	var out []string
	for _, name := range t.all() {
		out = append(out, "DROP TABLE IF EXISTS "+name)
	}
	return out
}

// renameStatements renames the tables from into the names of to.
func renameStatements(from, to tables) []string {
	f, t := from.all(), to.all()
	out := make([]string, len(f))
	for i := range f {
		out[i] = "ALTER TABLE " + f[i] + " RENAME TO " + t[i]
	}
	return out
}

// placeholders returns "?, ?, …" with n marks.
func placeholders(n int) string {
	return strings.TrimSuffix(strings.Repeat("?, ", n), ", ")
}
