"""The store's schema, as numbered migrations: small decorated functions applied in order.

One set serves both engines: a migration's script is written in SQLite's spelling and
Dialect.ddl rewrites its column types for PostgreSQL. A store records how many it has applied
(SQLite: PRAGMA user_version; PostgreSQL: the panel_schema table); opening it for writing
applies the rest in one transaction. A store made by a newer panel (more migrations than known)
is refused, and so is a database holding tables panel did not create; reading never migrates.
"""

from __future__ import annotations

from collections.abc import Callable

from panel.errors import ConfigError
from panel.store.sql import Connection, Database, Dialect

Migration = Callable[[Connection, Dialect], None]
MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    """Register fn as the next numbered migration."""
    MIGRATIONS.append(fn)
    return fn


def _execute_script(db: Connection, dialect: Dialect, script: str) -> None:
    """Run ;-separated statements inside the caller's transaction (executescript would commit)."""
    for statement in dialect.ddl(script).split(";"):
        if statement.strip():
            db.execute(statement)


@migration
def m001_initial(db: Connection, dialect: Dialect) -> None:
    _execute_script(
        db,
        dialect,
        """
        CREATE TABLE tools (
            slug TEXT PRIMARY KEY,
            card TEXT NOT NULL,
            card_hash TEXT NOT NULL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL
        );
        CREATE TABLE reviews (
            id INTEGER PRIMARY KEY,
            tool TEXT NOT NULL REFERENCES tools(slug),
            card_hash TEXT NOT NULL,
            persona TEXT NOT NULL,
            prompt_version TEXT NOT NULL,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            score INTEGER NOT NULL CHECK (score BETWEEN 0 AND 100),
            verdict TEXT NOT NULL CHECK (verdict IN ('ship', 'skip')),
            review TEXT NOT NULL CHECK (length(review) > 0),
            fields TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            created_at REAL NOT NULL,
            UNIQUE (card_hash, persona, prompt_version, provider, model)
        );
        CREATE INDEX reviews_by_tool ON reviews (tool, created_at);
        CREATE TABLE calls (
            id INTEGER PRIMARY KEY,
            at REAL NOT NULL,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            tool TEXT NOT NULL,
            persona TEXT NOT NULL,
            prompt_hash TEXT NOT NULL,
            latency_ms INTEGER NOT NULL,
            input_tokens INTEGER NOT NULL,
            output_tokens INTEGER NOT NULL,
            cost_usd REAL,
            outcome TEXT NOT NULL,
            error TEXT
        );
        """,
    )


@migration
def m002_votes_and_comparisons(db: Connection, dialect: Dialect) -> None:
    _execute_script(
        db,
        dialect,
        """
        CREATE TABLE votes (
            tool TEXT NOT NULL REFERENCES tools(slug),
            voter TEXT NOT NULL,
            vote TEXT NOT NULL CHECK (vote IN ('ship', 'skip')),
            at REAL NOT NULL,
            PRIMARY KEY (tool, voter)
        );
        CREATE TABLE comparisons (
            a TEXT NOT NULL REFERENCES tools(slug),
            b TEXT NOT NULL REFERENCES tools(slug),
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            PRIMARY KEY (a, b)
        );
        """,
    )


@migration
def m003_queue(db: Connection, dialect: Dialect) -> None:
    _execute_script(
        db,
        dialect,
        """
        CREATE TABLE jobs (
            id INTEGER PRIMARY KEY,
            a TEXT NOT NULL REFERENCES tools(slug),
            b TEXT NOT NULL REFERENCES tools(slug),
            state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            lease_owner TEXT,
            lease_expires REAL,
            last_error TEXT,
            files TEXT,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            UNIQUE (a, b)
        );
        CREATE TABLE tasks (
            tool TEXT NOT NULL REFERENCES tools(slug),
            persona TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            lease_owner TEXT,
            lease_expires REAL,
            last_error TEXT,
            updated_at REAL NOT NULL,
            PRIMARY KEY (tool, persona)
        );
        CREATE INDEX jobs_by_state ON jobs (state, id);
        CREATE INDEX tasks_by_state ON tasks (state, tool);
        """,
    )


@migration
def m004_batches(db: Connection, dialect: Dialect) -> None:
    """Provider batches in flight, so a killed `queue run --batch-api` resumes instead of resubmitting."""
    _execute_script(
        db,
        dialect,
        """
        CREATE TABLE batches (
            id INTEGER PRIMARY KEY,
            provider TEXT NOT NULL,
            batch_id TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('submitted', 'ended')),
            status TEXT NOT NULL,
            lease_owner TEXT,
            lease_expires REAL,
            created_at REAL NOT NULL,
            updated_at REAL NOT NULL,
            UNIQUE (provider, batch_id)
        );
        CREATE TABLE batch_items (
            batch INTEGER NOT NULL REFERENCES batches(id),
            custom_id TEXT NOT NULL,
            tool TEXT NOT NULL,
            persona TEXT NOT NULL,
            model TEXT NOT NULL,
            prompt_version TEXT NOT NULL,
            prompt_hash TEXT NOT NULL,
            card_hash TEXT NOT NULL,
            outcome TEXT,
            PRIMARY KEY (batch, custom_id)
        );
        CREATE INDEX batch_items_by_task ON batch_items (tool, persona);
        CREATE INDEX batches_by_state ON batches (state);
        """,
    )


@migration
def m005_card_findings(db: Connection, dialect: Dialect) -> None:
    """What the injection scan found in each card's raw text, which cleaning removes in part."""
    db.execute("ALTER TABLE tools ADD COLUMN findings TEXT NOT NULL DEFAULT '[]'")


@migration
def m006_rate_limits(db: Connection, dialect: Dialect) -> None:
    """Each provider's shared rate budgets (see Store.reserve): every worker, on every machine,
    spends from the same rows."""
    _execute_script(
        db,
        dialect,
        """
        CREATE TABLE rate_limits (
            provider TEXT NOT NULL,
            kind TEXT NOT NULL,
            tat REAL NOT NULL,
            PRIMARY KEY (provider, kind)
        );
        """,
    )


@migration
def m007_calls_by_time(db: Connection, dialect: Dialect) -> None:
    """The progress of a queue run counts the calls logged since it started: by index, not by
    reading the whole log."""
    db.execute("CREATE INDEX calls_by_time ON calls (at)")


@migration
def m008_cached_tokens(db: Connection, dialect: Dialect) -> None:
    """Prompt tokens a provider served from its prompt cache, priced at its cached rate."""
    db.execute("ALTER TABLE calls ADD COLUMN cached_tokens INTEGER NOT NULL DEFAULT 0")


@migration
def m009_review_samples(db: Connection, dialect: Dialect) -> None:
    """A persona may answer a card several times (--samples N): each answer is one sample, kept
    under its index, so the review key gains `sample` (0 for every review made before). The
    table is made anew, as neither engine can widen a UNIQUE constraint in place. Queued tasks
    remember how many samples they ask for. A tool row may be a probe of `panel eval` (a
    perturbed card, e.g. padding), which no command but eval lists or finds."""
    _execute_script(
        db,
        dialect,
        """
        CREATE TABLE reviews_new (
            id INTEGER PRIMARY KEY,
            tool TEXT NOT NULL REFERENCES tools(slug),
            card_hash TEXT NOT NULL,
            persona TEXT NOT NULL,
            prompt_version TEXT NOT NULL,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            sample INTEGER NOT NULL DEFAULT 0 CHECK (sample >= 0),
            score INTEGER NOT NULL CHECK (score BETWEEN 0 AND 100),
            verdict TEXT NOT NULL CHECK (verdict IN ('ship', 'skip')),
            review TEXT NOT NULL CHECK (length(review) > 0),
            fields TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            created_at REAL NOT NULL,
            UNIQUE (card_hash, persona, prompt_version, provider, model, sample)
        );
        INSERT INTO reviews_new (tool, card_hash, persona, prompt_version, provider, model,
            score, verdict, review, fields, attempts, created_at)
            SELECT tool, card_hash, persona, prompt_version, provider, model,
                score, verdict, review, fields, attempts, created_at FROM reviews ORDER BY id;
        DROP TABLE reviews;
        ALTER TABLE reviews_new RENAME TO reviews;
        CREATE INDEX reviews_by_tool ON reviews (tool, created_at);
        ALTER TABLE tasks ADD COLUMN samples INTEGER NOT NULL DEFAULT 1;
        ALTER TABLE tools ADD COLUMN probe TEXT
        """,
    )


@migration
def m010_batch_samples(db: Connection, dialect: Dialect) -> None:
    """A provider batch may carry several samples of one review (queue add --samples N): each
    item says which sample it asks for (0 for every item submitted before)."""
    db.execute("ALTER TABLE batch_items ADD COLUMN sample INTEGER NOT NULL DEFAULT 0")


_PAIR_JUDGMENT = """id INTEGER PRIMARY KEY,
            first_tool TEXT NOT NULL REFERENCES tools(slug),
            second_tool TEXT NOT NULL REFERENCES tools(slug),
            first_hash TEXT NOT NULL,
            second_hash TEXT NOT NULL,
            persona TEXT NOT NULL,
            prompt_version TEXT NOT NULL,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            sample INTEGER NOT NULL DEFAULT 0 CHECK (sample >= 0),
            prefers TEXT NOT NULL CHECK (prefers IN ('first', 'second', 'tie')),
            reason TEXT NOT NULL CHECK (length(reason) > 0),
            attempts INTEGER NOT NULL,
            created_at REAL NOT NULL"""
"""The columns of a pair judgment as m011 made them (m015 adds its conditions to the key)."""


@migration
def m011_pair_judgments(db: Connection, dialect: Dialect) -> None:
    """Pair judgments (compare, eval and queue add --pairwise): a persona shown two cards,
    `first_tool` first, says which it would ship with. Keyed like reviews, by both cards'
    content (so the order is part of the key), persona, prompt version, provider, model and
    sample. A queued job may judge its pair: its pair tasks, one per persona and pair of tools
    (both orders, every sample), run once both tools' reviews are done. A provider batch item
    may ask for a pair judgment (its second card then named)."""
    _execute_script(
        db,
        dialect,
        f"""
        CREATE TABLE pair_judgments (
            {_PAIR_JUDGMENT},
            UNIQUE (first_hash, second_hash, persona, prompt_version, provider, model, sample)
        );
        CREATE INDEX pair_judgments_by_tools ON pair_judgments (first_tool, second_tool);
        ALTER TABLE jobs ADD COLUMN pairwise INTEGER NOT NULL DEFAULT 0;
        CREATE TABLE pair_tasks (
            a TEXT NOT NULL REFERENCES tools(slug),
            b TEXT NOT NULL REFERENCES tools(slug),
            persona TEXT NOT NULL,
            state TEXT NOT NULL CHECK (state IN ('pending', 'running', 'done', 'failed')),
            samples INTEGER NOT NULL DEFAULT 1,
            attempts INTEGER NOT NULL DEFAULT 0,
            lease_owner TEXT,
            lease_expires REAL,
            last_error TEXT,
            updated_at REAL NOT NULL,
            PRIMARY KEY (a, b, persona)
        );
        CREATE INDEX pair_tasks_by_state ON pair_tasks (state, a, b);
        ALTER TABLE batch_items ADD COLUMN second_tool TEXT;
        ALTER TABLE batch_items ADD COLUMN second_hash TEXT
        """,
    )


@migration
def m012_serve_vote_totals(db: Connection, dialect: Dialect) -> None:
    """Each tool's ship and skip votes, kept with every vote (panel.store.insert_vote), so a
    summary reads one row instead of counting every vote: `panel serve` answers each vote
    with it. Filled from the votes already stored."""
    _execute_script(
        db,
        dialect,
        """
        CREATE TABLE vote_totals (
            tool TEXT PRIMARY KEY REFERENCES tools(slug),
            ship INTEGER NOT NULL CHECK (ship >= 0),
            skip INTEGER NOT NULL CHECK (skip >= 0)
        );
        INSERT INTO vote_totals (tool, ship, skip)
            SELECT tool, count(*) FILTER (WHERE vote = 'ship'), count(*) FILTER (WHERE vote = 'skip')
            FROM votes GROUP BY tool
        """,
    )


@migration
def m013_rate_limits_by_endpoint(db: Connection, dialect: Dialect) -> None:
    """Rate budgets and Retry-After pauses keyed by provider and endpoint (a local server's 429
    must not pause calls to the provider's own API). The old rows, keyed by provider alone, are
    dropped: a budget row is at most a second ahead of the clock, and a pause stored before
    pauses were capped may reach years ahead, which is what this drops."""
    _execute_script(
        db,
        dialect,
        """
        DROP TABLE rate_limits;
        CREATE TABLE rate_limits (
            provider TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            kind TEXT NOT NULL,
            tat REAL NOT NULL,
            PRIMARY KEY (provider, endpoint, kind)
        )
        """,
    )


@migration
def m014_review_conditions(db: Connection, dialect: Dialect) -> None:
    """A review records what shaped it besides the card and the question: the mitigations
    (--rotate-fields, --blind-names, --strip-injection) that changed what its judge saw, and the
    temperature it was asked at. Both join the review key, so mitigated reviews are stored apart
    from unmitigated ones, and a sample set is made at one temperature (a one-sample review at
    0 is no longer reused as sample 0 of a set asked at 0.7). It also keeps what the call that
    gave it cost, so a run that reuses it can say what it cost when made.

    Reviews made before were unmitigated and their temperature was not recorded: they get the
    temperature panel's default rule gave them (sample 0 at 0, later samples at 0.7), and so do
    provider batch items still in flight."""
    _execute_script(
        db,
        dialect,
        """
        CREATE TABLE reviews_new (
            id INTEGER PRIMARY KEY,
            tool TEXT NOT NULL REFERENCES tools(slug),
            card_hash TEXT NOT NULL,
            persona TEXT NOT NULL,
            prompt_version TEXT NOT NULL,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            mitigations TEXT NOT NULL DEFAULT '',
            temperature REAL NOT NULL DEFAULT 0,
            sample INTEGER NOT NULL DEFAULT 0 CHECK (sample >= 0),
            score INTEGER NOT NULL CHECK (score BETWEEN 0 AND 100),
            verdict TEXT NOT NULL CHECK (verdict IN ('ship', 'skip')),
            review TEXT NOT NULL CHECK (length(review) > 0),
            fields TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            created_at REAL NOT NULL,
            cost_usd REAL,
            UNIQUE (card_hash, persona, prompt_version, provider, model, mitigations,
                temperature, sample)
        );
        INSERT INTO reviews_new (tool, card_hash, persona, prompt_version, provider, model,
            temperature, sample, score, verdict, review, fields, attempts, created_at)
            SELECT tool, card_hash, persona, prompt_version, provider, model,
                CASE WHEN sample > 0 AND provider != 'import' THEN 0.7 ELSE 0 END,
                sample, score, verdict, review, fields, attempts, created_at
            FROM reviews ORDER BY id;
        DROP TABLE reviews;
        ALTER TABLE reviews_new RENAME TO reviews;
        CREATE INDEX reviews_by_tool ON reviews (tool, created_at);
        ALTER TABLE batch_items ADD COLUMN mitigations TEXT NOT NULL DEFAULT '';
        ALTER TABLE batch_items ADD COLUMN temperature REAL NOT NULL DEFAULT 0;
        UPDATE batch_items SET temperature = 0.7 WHERE sample > 0
        """,
    )


@migration
def m015_pair_conditions(db: Connection, dialect: Dialect) -> None:
    """A pair judgment is keyed like a review (one key for every kind of question): the
    mitigations that shaped what its judge saw of either card, and its temperature, join its
    unique key, so a --blind-names judgment is never served from an unblinded row, nor one asked
    at 0.7 from one asked at 0.

    Judgments made before were unmitigated (mitigations did not reach pair prompts); they get
    the temperature panel's default rule gave them (sample 0 at 0, later samples at 0.7), as
    m014 gave reviews."""
    _execute_script(
        db,
        dialect,
        f"""
        CREATE TABLE pair_judgments_new (
            {_PAIR_JUDGMENT},
            mitigations TEXT NOT NULL DEFAULT '',
            temperature REAL NOT NULL DEFAULT 0,
            UNIQUE (first_hash, second_hash, persona, prompt_version, provider, model,
                mitigations, temperature, sample)
        );
        INSERT INTO pair_judgments_new (first_tool, second_tool, first_hash, second_hash,
            persona, prompt_version, provider, model, temperature, sample, prefers, reason,
            attempts, created_at)
            SELECT first_tool, second_tool, first_hash, second_hash, persona, prompt_version,
                provider, model, CASE WHEN sample > 0 THEN 0.7 ELSE 0 END, sample, prefers,
                reason, attempts, created_at
            FROM pair_judgments ORDER BY id;
        DROP TABLE pair_judgments;
        ALTER TABLE pair_judgments_new RENAME TO pair_judgments;
        CREATE INDEX pair_judgments_by_tools ON pair_judgments (first_tool, second_tool)
        """,
    )


@migration
def m016_vote_networks(db: Connection, dialect: Dialect) -> None:
    """`panel serve` keeps the client network each web vote came from (`network`: an IPv4
    address or an IPv6 /64; `wide`: the IPv4 address or the IPv6 /48), to cap what one network
    adds to a tool in a day, and keeps how many distinct networks stand behind each tool's votes
    (`vote_totals.networks`, with the networks seen in `vote_networks`), so a summary still
    reads one row. Votes cast before, and the command line's, have no network: each counts as
    a network of its own. `serve_probes` is the row each server's health check writes to prove
    the store takes writes."""
    _execute_script(
        db,
        dialect,
        """
        ALTER TABLE votes ADD COLUMN network TEXT;
        ALTER TABLE votes ADD COLUMN wide TEXT;
        CREATE INDEX votes_by_network ON votes (tool, network, at);
        CREATE INDEX votes_by_wide ON votes (tool, wide, at);
        CREATE TABLE vote_networks (
            tool TEXT NOT NULL REFERENCES tools(slug),
            network TEXT NOT NULL,
            PRIMARY KEY (tool, network)
        );
        ALTER TABLE vote_totals ADD COLUMN networks INTEGER NOT NULL DEFAULT 0;
        UPDATE vote_totals SET networks = ship + skip;
        CREATE TABLE serve_probes (
            name TEXT PRIMARY KEY,
            at REAL NOT NULL
        )
        """,
    )


@migration
def m017_decision_probabilities(db: Connection, dialect: Dialect) -> None:
    """A review's score and a pair judgment's pick as the judge weighed them: JSON of each
    value's probability where the provider reported them (panel.providers.decisions), else
    null. Rows stored before have none."""
    _execute_script(
        db,
        dialect,
        """
        ALTER TABLE reviews ADD COLUMN probabilities TEXT;
        ALTER TABLE pair_judgments ADD COLUMN probabilities TEXT
        """,
    )


@migration
def m018_claimable_queue(db: Connection, dialect: Dialect) -> None:
    """Claiming in O(log n) however much is queued (panel.queue.store): an index on what is
    claimable (state, the ready hint, then the key in the order claims take it) and one on the
    leases that can run out (state, lease_expires), so each look of a claim is a range that
    stops at its first row; they replace the indexes by state alone. `ready` is the hint a
    finished unit sets on the jobs and pair tasks that wait for it (a review task waits for
    nothing: always 1); every row queued so far starts hinted, and the indexes on the second
    tool find them."""
    _execute_script(
        db,
        dialect,
        """
        ALTER TABLE jobs ADD COLUMN ready INTEGER NOT NULL DEFAULT 1;
        ALTER TABLE tasks ADD COLUMN ready INTEGER NOT NULL DEFAULT 1;
        ALTER TABLE pair_tasks ADD COLUMN ready INTEGER NOT NULL DEFAULT 1;
        DROP INDEX jobs_by_state;
        DROP INDEX tasks_by_state;
        DROP INDEX pair_tasks_by_state;
        CREATE INDEX jobs_claimable ON jobs (state, ready, id);
        CREATE INDEX jobs_leased ON jobs (state, lease_expires);
        CREATE INDEX jobs_by_b ON jobs (b);
        CREATE INDEX tasks_claimable ON tasks (state, ready, tool, persona);
        CREATE INDEX tasks_leased ON tasks (state, lease_expires);
        CREATE INDEX pair_tasks_claimable ON pair_tasks (state, ready, a, b, persona);
        CREATE INDEX pair_tasks_leased ON pair_tasks (state, lease_expires);
        CREATE INDEX pair_tasks_by_b ON pair_tasks (b)
        """,
    )


@migration
def m019_site_indexes(db: Connection, dialect: Dialect) -> None:
    """What the site reads through an index, not a scan: a card's comparisons on either side
    (the primary key serves `a`), the comparisons by age (the listings and the feed), a
    pair's judgments in either order, and a tool's reviews of its current card."""
    _execute_script(
        db,
        dialect,
        """
        CREATE INDEX comparisons_by_b ON comparisons (b, a);
        CREATE INDEX comparisons_by_age ON comparisons (created_at, a, b);
        CREATE INDEX pair_judgments_by_second ON pair_judgments (second_tool, first_tool);
        CREATE INDEX reviews_by_card ON reviews (tool, card_hash, created_at)
        """,
    )


@migration
def m020_page_cards(db: Connection, dialect: Dialect) -> None:
    """Cards read from launch pages (`panel card`, a URL given for a card): the model's answer
    to the third kind of question, keyed like the others by what it read (the page's text
    hash), the reader, prompt version, provider, model, temperature and sample; a page whose
    text is unchanged is not read again. `feed_entries` holds every feed entry queued (`queue
    add --feed`), under each thing that names it (its id, its link, the hash of its content),
    so an entry seen before is skipped."""
    _execute_script(
        db,
        dialect,
        """
        CREATE TABLE page_cards (
            id INTEGER PRIMARY KEY,
            url TEXT NOT NULL,
            text_hash TEXT NOT NULL,
            persona TEXT NOT NULL,
            prompt_version TEXT NOT NULL,
            provider TEXT NOT NULL,
            model TEXT NOT NULL,
            mitigations TEXT NOT NULL DEFAULT '',
            temperature REAL NOT NULL DEFAULT 0,
            sample INTEGER NOT NULL DEFAULT 0,
            fields TEXT NOT NULL,
            attempts INTEGER NOT NULL,
            created_at REAL NOT NULL,
            cost_usd REAL,
            UNIQUE (text_hash, persona, prompt_version, provider, model, mitigations,
                temperature, sample)
        );
        CREATE TABLE feed_entries (
            entry TEXT PRIMARY KEY,
            feed TEXT NOT NULL,
            tool TEXT NOT NULL,
            seen_at REAL NOT NULL
        )
        """,
    )


def check(database: Database, *, write: bool, first: str) -> int:
    """Return the store's schema version if panel may use it; raise ConfigError if not.

    Refused: a database panel did not create, one made by a newer panel, and for reading (write
    False) an empty one or one an older panel made; `first` names the command that makes it.
    """
    version = database.schema_version()
    if version is None:
        raise ConfigError(
            "not a panel database (it holds other tables); left as it is", path=str(database.where)
        )
    if version > len(MIGRATIONS):
        raise ConfigError(f"made by a newer panel (schema {version})", path=str(database.where))
    if not write and version == 0:
        raise ConfigError(f"no store yet (run `{first}` first)", path=str(database.where))
    if not write and version < len(MIGRATIONS):
        raise ConfigError(
            f"made by an older panel (schema {version}): "
            "any command that writes (e.g. `panel review`) upgrades it",
            path=str(database.where),
        )
    return version


def apply(database: Database) -> None:
    """Apply the migrations the database lacks, in one transaction (a newer one is refused)."""
    with database.transaction() as db:
        if database.dialect.lock_schema:
            db.execute(database.dialect.lock_schema)
        current = database.schema_version(db)
        if current is None or current > len(MIGRATIONS):
            raise ConfigError("changed by another process while opening", path=str(database.where))
        for number, step in enumerate(MIGRATIONS[current:], start=current + 1):
            step(db, database.dialect)
            database.set_schema_version(db, number)
