package compare

import (
	"context"
	"errors"
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5"

	"github.com/roamtrail/roamtrail/itinerary"
)

// PostgresOptions configure a Postgres store.
type PostgresOptions struct {
	// URL is the server, e.g.
	// postgres://postgres@127.0.0.1:5432/test?sslmode=disable. Required.
	URL string

	// Table is the table's name: lower-case letters, digits and
	// underscores. It is dropped and made again by OpenPostgres and
	// dropped by Close, so it must be the caller's own. The default is
	// roamtrail_compare.
	Table string

	// Conns is how many connections are opened, each with the lookup
	// prepared on it: how many Visits calls run at once (more wait for a
	// connection). The default is 2, one per core of the bench machine.
	Conns int
}

var tableName = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// Postgres keeps visits in one table, one row a visit, with the natural
// primary key (pseudonym, day, region): a lookup is one index range scan.
type Postgres struct {
	url   string
	table string
	all   []*pgx.Conn
	conns chan *pgx.Conn
}

// lookupStmt names the prepared lookup on every connection.
const lookupStmt = "roamtrail_compare_visits"

// OpenPostgres connects and makes the table afresh, empty and without its
// index (Load builds it after the rows are in, as a bulk load should).
func OpenPostgres(ctx context.Context, o PostgresOptions) (_ *Postgres, err error) {
	if o.URL == "" {
		return nil, fmt.Errorf("%w: PostgresOptions.URL is required", ErrBadOption)
	}
	if o.Table == "" {
		o.Table = "roamtrail_compare"
	}
	if !tableName.MatchString(o.Table) {
		return nil, fmt.Errorf("%w: PostgresOptions.Table %q: want lower-case letters, digits and _", ErrBadOption, o.Table)
	}
	if o.Conns == 0 {
		o.Conns = 2
	}
	if o.Conns < 1 {
		return nil, fmt.Errorf("%w: PostgresOptions.Conns %d: want at least 1", ErrBadOption, o.Conns)
	}
	p := &Postgres{url: o.URL, table: pgx.Identifier{o.Table}.Sanitize(), conns: make(chan *pgx.Conn, o.Conns)}
	defer func() {
		if err != nil {
			p.closeConns(context.WithoutCancel(ctx))
		}
	}()
	for range o.Conns {
		c, err := pgx.Connect(ctx, o.URL)
		if err != nil {
			return nil, fmt.Errorf("compare: postgres: connect: %w", err)
		}
		p.all = append(p.all, c)
	}
	// Columns as a schema would have them: the pseudonym's 16 bytes, the
	// local day as days since 1970 (what itinerary.Day counts), the region
	// code, the first and last sighting as seconds since local midnight.
	for _, q := range []string{
		"DROP TABLE IF EXISTS " + p.table,
		"CREATE TABLE " + p.table + " (pseudonym bytea NOT NULL, day integer NOT NULL, region integer NOT NULL, first_sec integer NOT NULL, last_sec integer NOT NULL)",
	} {
		if _, err := p.all[0].Exec(ctx, q); err != nil {
			return nil, fmt.Errorf("compare: postgres: make table: %w", err)
		}
	}
	return p, nil
}

// Load writes subs with one COPY (binary, in subscriber order, so that a
// subscriber's rows share heap pages as they would after a CLUSTER), then
// adds the primary key and ANALYZEs, and prepares the lookup on every
// connection. Load.Bytes is pg_total_relation_size: heap, index and TOAST.
func (p *Postgres) Load(ctx context.Context, subs []Subscriber) (Load, error) {
	var ld Load
	si, vi := 0, 0
	rows := 0
	for _, s := range subs {
		rows += len(s.Visits)
	}
	row := make([]any, 5)
	n, err := p.all[0].CopyFrom(ctx, pgx.Identifier{p.rawTable()}, []string{"pseudonym", "day", "region", "first_sec", "last_sec"},
		pgx.CopyFromFunc(func() ([]any, error) {
			for si < len(subs) && vi >= len(subs[si].Visits) {
				si, vi = si+1, 0
			}
			if si == len(subs) {
				return nil, nil
			}
			v := subs[si].Visits[vi]
			vi++
			row[0], row[1], row[2], row[3], row[4] = subs[si].Sub[:], int32(v.Day), int32(v.Region), int32(v.First), int32(v.Last)
			return row, nil
		}))
	if err != nil {
		return ld, fmt.Errorf("compare: postgres: copy: %w", err)
	}
	if int(n) != rows {
		return ld, fmt.Errorf("%w: postgres copied %d rows of %d", ErrCorrupt, n, rows)
	}
	ld.Visits = rows
	for _, q := range []string{
		"ALTER TABLE " + p.table + " ADD PRIMARY KEY (pseudonym, day, region)",
		"ANALYZE " + p.table,
	} {
		if _, err := p.all[0].Exec(ctx, q); err != nil {
			return ld, fmt.Errorf("compare: postgres: index: %w", err)
		}
	}
	for _, c := range p.all {
		if _, err := c.Prepare(ctx, lookupStmt,
			"SELECT day, region, first_sec, last_sec FROM "+p.table+" WHERE pseudonym = $1 AND day BETWEEN $2 AND $3 ORDER BY day, region"); err != nil {
			return ld, fmt.Errorf("compare: postgres: prepare: %w", err)
		}
		p.conns <- c
	}
	if err := p.all[0].QueryRow(ctx, "SELECT pg_total_relation_size($1::regclass)", p.table).Scan(&ld.Bytes); err != nil {
		return ld, fmt.Errorf("compare: postgres: size: %w", err)
	}
	return ld, nil
}

// rawTable is the table name unquoted, for pgx.Identifier.
func (p *Postgres) rawTable() string {
	id := p.table
	return id[1 : len(id)-1] // Sanitize quoted a name that needs no escaping
}

// Visits appends sub's visits on the days of w to dst, sorted by day,
// through the prepared statement. It waits for a free connection.
func (p *Postgres) Visits(ctx context.Context, sub itinerary.Pseudonym, w itinerary.Window, dst []itinerary.Visit) ([]itinerary.Visit, error) {
	var c *pgx.Conn
	select {
	case c = <-p.conns:
	case <-ctx.Done():
		return dst, ctx.Err()
	}
	defer func() { p.conns <- c }()
	rows, err := c.Query(ctx, lookupStmt, sub[:], int32(w.First), int32(w.Last))
	if err != nil {
		return dst, fmt.Errorf("compare: postgres: lookup: %w", err)
	}
	defer rows.Close()
	var day, region, first, last int32
	for rows.Next() {
		if err := rows.Scan(&day, &region, &first, &last); err != nil {
			return dst, fmt.Errorf("compare: postgres: lookup: %w", err)
		}
		dst = append(dst, itinerary.Visit{Day: itinerary.Day(day), Region: itinerary.Region(region), First: uint32(first), Last: uint32(last)})
	}
	if err := rows.Err(); err != nil {
		return dst, fmt.Errorf("compare: postgres: lookup: %w", err)
	}
	return dst, nil
}

// Close drops the table and closes the connections. It is safe to call
// more than once and after an interrupted Load; ctx bounds the drop.
func (p *Postgres) Close(ctx context.Context) error {
	if p.url == "" {
		return nil
	}
	// pgx closes a connection whose query was cancelled (an interrupt
	// mid-COPY): drop the table on a connection of its own.
	err := p.closeConns(ctx)
	c, cerr := pgx.Connect(ctx, p.url)
	if cerr != nil {
		return errors.Join(err, fmt.Errorf("compare: postgres: drop: %w", cerr))
	}
	if _, derr := c.Exec(ctx, "DROP TABLE IF EXISTS "+p.table); derr != nil {
		err = errors.Join(err, fmt.Errorf("compare: postgres: drop: %w", derr))
	}
	p.url = ""
	return errors.Join(err, c.Close(ctx))
}

func (p *Postgres) closeConns(ctx context.Context) error {
	var errs []error
	for _, c := range p.all {
		errs = append(errs, c.Close(ctx))
	}
	p.all = nil
	return errors.Join(errs...)
}
