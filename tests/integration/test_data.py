"""The data tools through the real binary: `duckgate gen imdb` (determinism, shape), `import imdb`
(the TSV fixture of tests/fixtures/imdb, plain and .gz), `build` (idempotence, a failing step
leaves the file untouched) and every dashboard query of queries/imdb against the hand-checkable
fixture, with answers worked out by hand from the TSV files.

Tables are compared by checksum: row count plus the sum of DuckDB's hash of every row (order
independent), computed by an independent DuckDB (duckdb_reader, the pinned libduckdb.so)."""

import fcntl
import gzip
import hashlib
import json
import os
import shutil
import subprocess

import pytest

import dgserver
from duckdb_reader import DuckDB

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIXTURE = os.path.join(REPO, "tests", "fixtures", "imdb")
PIPELINE = os.path.join(REPO, "pipelines", "imdb")
QUERIES = os.path.join(REPO, "queries", "imdb")
DUMPS = ["name.basics", "title.basics", "title.principals", "title.ratings", "title.crew"]
BASE_TABLES = ["name_basics", "title_basics", "title_principals", "title_ratings", "title_crew"]


def run(binary, *args, timeout=300, stdin=None):
    return subprocess.run([binary, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          timeout=timeout, input=stdin)


def ok(p):
    assert p.returncode == 0, p.stderr.decode(errors="replace")
    return p


def checksums(path):
    """{table: (rows, sum of row hashes)} of every table in the database file."""
    duck = DuckDB()
    try:
        duck.query("ATTACH '%s' AS d (READ_ONLY)" % path.replace("'", "''"))
        names = [r[0] for r in duck.query(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = 'd' ORDER BY 1")]
        out = {}
        for t in names:
            out[t] = tuple(duck.query('SELECT count(*), sum(hash(x))::VARCHAR FROM d."%s" x'
                                      % t)[0])
        return out
    finally:
        duck.close()


def sql_rows(path, sql):
    duck = DuckDB()
    try:
        duck.query("ATTACH '%s' AS d (READ_ONLY); USE d" % path.replace("'", "''"))
        return duck.query(sql)
    finally:
        duck.close()


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


# --------------------------------------------------------------------------------------------
# gen


def test_gen_is_deterministic(binary, tmp_path):
    a, b = str(tmp_path / "a.duckdb"), str(tmp_path / "b.duckdb")
    ok(run(binary, "gen", "imdb", "--scale", "0.0005", "--out", a, "--plain"))
    ok(run(binary, "gen", "imdb", "--scale", "0.0005", "--out", b, "--plain", "--threads", "1"))
    ca, cb = checksums(a), checksums(b)
    assert sorted(ca) == sorted(BASE_TABLES)
    assert ca == cb
    assert ca["name_basics"][0] == "7500" and ca["title_basics"][0] == "5500"
    assert not os.path.exists(a + ".next")
    # A different scale is different data.
    c = str(tmp_path / "c.duckdb")
    ok(run(binary, "gen", "imdb", "--scale", "0.0006", "--out", c, "--plain"))
    assert checksums(c)["title_principals"] != ca["title_principals"]


def test_gen_schema_and_shape(binary, tmp_path):
    db = str(tmp_path / "g.duckdb")
    p = ok(run(binary, "gen", "imdb", "--scale", "0.002", "--out", db, "--plain"))
    err = p.stderr.decode()
    assert "step title_principals: done" in err and "total" in err
    types = sql_rows(db, "SELECT table_name || '.' || column_name || ':' || data_type FROM "
                         "duckdb_columns() WHERE database_name = 'd' ORDER BY table_name, "
                         "column_index")
    got = [r[0] for r in types]
    assert got == [
        "name_basics.nconst:VARCHAR", "name_basics.primaryName:VARCHAR",
        "name_basics.birthYear:INTEGER", "name_basics.deathYear:INTEGER",
        "name_basics.primaryProfession:VARCHAR", "name_basics.knownForTitles:VARCHAR",
        "title_basics.tconst:VARCHAR", "title_basics.titleType:VARCHAR",
        "title_basics.primaryTitle:VARCHAR", "title_basics.originalTitle:VARCHAR",
        "title_basics.isAdult:BOOLEAN", "title_basics.startYear:INTEGER",
        "title_basics.endYear:INTEGER", "title_basics.runtimeMinutes:INTEGER",
        "title_basics.genres:VARCHAR",
        "title_crew.tconst:VARCHAR", "title_crew.directors:VARCHAR",
        "title_crew.writers:VARCHAR",
        "title_principals.tconst:VARCHAR", "title_principals.ordering:INTEGER",
        "title_principals.nconst:VARCHAR", "title_principals.category:VARCHAR",
        "title_principals.job:VARCHAR", "title_principals.characters:VARCHAR",
        "title_ratings.tconst:VARCHAR", "title_ratings.averageRating:DOUBLE",
        "title_ratings.numVotes:INTEGER",
    ]
    # Credits per person: heavy-tailed like the dumps (60% one credit, ~15% three or more,
    # ~6 on average), every credit pointing at an existing person and title.
    people, single, many, credits, top = [float(x) for x in sql_rows(db, """
        WITH c AS (SELECT nconst, count(*) AS n FROM title_principals GROUP BY nconst)
        SELECT (SELECT count(*) FROM name_basics), count(*) FILTER (WHERE n = 1),
               count(*) FILTER (WHERE n >= 3), sum(n), max(n) FROM c""")[0]]
    assert people == 30000
    assert 0.55 < single / people < 0.65
    assert 0.13 < many / people < 0.18
    assert 4.5 < credits / people < 7.5
    assert top >= 200  # the tail is there
    orphans = sql_rows(db, """
        SELECT (SELECT count(*) FROM title_principals p ANTI JOIN name_basics USING (nconst)),
               (SELECT count(*) FROM title_principals p ANTI JOIN title_basics USING (tconst))""")
    assert orphans == [["0", "0"]]
    rated, genres_ok, names = sql_rows(db, """
        SELECT (SELECT count(*) FROM title_ratings) / (SELECT count(*) FROM title_basics),
               (SELECT bool_and(genres = array_to_string(list_sort(string_split(genres, ',')),
                ',')) FROM title_basics),
               (SELECT count(DISTINCT primaryName) FROM name_basics)""")[0]
    assert 0.11 < float(rated) < 0.16
    assert genres_ok == "true"  # sorted comma lists, as in the dumps
    assert int(names) > 3000    # plausible names, many distinct


def test_gen_bad_usage(binary, tmp_path):
    out = str(tmp_path / "x.duckdb")
    for args in (["gen", "imdb", "--scale", "0", "--out", out],
                 ["gen", "imdb", "--scale", "abc", "--out", out],
                 ["gen", "movies", "--scale", "1", "--out", out],
                 ["gen", "imdb", "--out", out]):
        p = run(binary, *args)
        assert p.returncode == 2, args
        assert b"duckgate gen:" in p.stderr
    assert not os.path.exists(out)


# --------------------------------------------------------------------------------------------
# import


def gz_copy(dst):
    os.makedirs(dst)
    for d in DUMPS:
        with open(os.path.join(FIXTURE, d + ".tsv"), "rb") as f, \
                gzip.open(os.path.join(dst, d + ".tsv.gz"), "wb") as g:
            g.write(f.read())


def test_import_fixture_plain_and_gz(binary, tmp_path):
    plain, zipped = str(tmp_path / "plain.duckdb"), str(tmp_path / "gz.duckdb")
    ok(run(binary, "import", "imdb", FIXTURE, "--out", plain, "--plain"))
    gz_copy(str(tmp_path / "gz"))
    ok(run(binary, "import", "imdb", str(tmp_path / "gz"), "--out", zipped, "--plain"))
    assert checksums(plain) == checksums(zipped)
    rows = sql_rows(plain, "SELECT tconst, primaryTitle, isAdult, startYear, endYear, "
                           "runtimeMinutes, genres FROM title_basics ORDER BY tconst")
    assert rows[2] == ["tt0000003", 'The "Quoted" Show', "false", "2005", "2009", "30", "Comedy"]
    assert rows[3] == ["tt0000004", "Tiny", "true", "2001", None, None, None]  # \N everywhere
    people = sql_rows(plain, "SELECT nconst, primaryName, birthYear, deathYear, "
                             "primaryProfession, knownForTitles FROM name_basics ORDER BY 1")
    assert people[3][1] == 'Dan "The Man" Duff'
    assert people[4] == ["nm0000005", "Eve Évora", None, None, None, None]  # empty array -> NULL
    assert people[6] == ["nm0000007", "Frank O'Neil", "1930", "1999", "director", "tt0000005"]
    crew = sql_rows(plain, "SELECT directors, writers FROM title_crew WHERE tconst = 'tt0000004'")
    assert crew == [[None, None]]
    chars = sql_rows(plain, "SELECT characters FROM title_principals WHERE tconst = 'tt0000002' "
                            "AND ordering = 2")
    assert chars == [['["Sue \\"Sunny\\" Smith"]']]
    types = sql_rows(plain, "SELECT data_type FROM duckdb_columns() WHERE database_name = 'd' "
                            "AND table_name = 'title_ratings' ORDER BY column_index")
    assert types == [["VARCHAR"], ["DOUBLE"], ["INTEGER"]]


def test_import_errors_name_the_file(binary, tmp_path):
    d = tmp_path / "dumps"
    shutil.copytree(FIXTURE, d)
    os.unlink(d / "title.crew.tsv")
    out = str(tmp_path / "x.duckdb")
    p = run(binary, "import", "imdb", str(d), "--out", out)
    assert p.returncode == 1 and b"title.crew.tsv[.gz] not found" in p.stderr
    assert not os.path.exists(out) and not os.path.exists(out + ".next")
    # A malformed line (a year that is not a number) is DuckDB's error with the file named.
    shutil.copy(os.path.join(FIXTURE, "title.crew.tsv"), d / "title.crew.tsv")
    with open(d / "title.ratings.tsv", "a") as f:
        f.write("tt0000009\tgood\t12\n")
    p = run(binary, "import", "imdb", str(d), "--out", out)
    assert p.returncode == 1
    assert b"title.ratings.tsv" in p.stderr and b"SQL_ERROR" in p.stderr
    assert not os.path.exists(out) and not os.path.exists(out + ".next")


# --------------------------------------------------------------------------------------------
# build


@pytest.fixture(scope="module")
def fixture_db(binary, tmp_path_factory):
    """The TSV fixture imported and built with pipelines/imdb."""
    d = tmp_path_factory.mktemp("imdb")
    db = str(d / "imdb.duckdb")
    ok(run(binary, "import", "imdb", FIXTURE, "--out", db, "--plain"))
    ok(run(binary, "build", db, PIPELINE, "--plain"))
    return db


def test_build_is_idempotent_and_reports(binary, tmp_path):
    db = str(tmp_path / "g.duckdb")
    ok(run(binary, "gen", "imdb", "--scale", "0.0005", "--out", db, "--plain"))
    base = checksums(db)
    p = ok(run(binary, "build", db, PIPELINE, "--plain"))
    err = p.stderr.decode()
    steps = sorted(f for f in os.listdir(PIPELINE) if f.endswith(".sql"))
    for s in steps:
        assert "step %s: done" % s in err
    assert "step" in err and "rows" in err and "time (s)" in err and "\ntotal" in err
    first = checksums(db)
    for t in BASE_TABLES:
        assert first[t] == base[t]  # the pipeline only adds tables
    assert "person_filmography" in first and "dashboard_cache" in first
    ok(run(binary, "build", db, PIPELINE, "--plain"))
    assert checksums(db) == first
    assert not os.path.exists(db + ".next")


def test_build_failed_step_leaves_file_untouched(binary, tmp_path, fixture_db):
    db = str(tmp_path / "f.duckdb")
    shutil.copy(fixture_db, db)
    before = sha256(db)
    pipe = tmp_path / "pipe"
    shutil.copytree(PIPELINE, pipe)
    with open(pipe / "05_zz_broken.sql", "w") as f:
        f.write("CREATE OR REPLACE TABLE broken AS SELECT no_such_column FROM titles;\n")
    p = run(binary, "build", db, str(pipe), "--plain")
    assert p.returncode == 1
    err = p.stderr.decode()
    assert "step 05_zz_broken.sql failed" in err and "no_such_column" in err
    assert "step 06_person_decades.sql" not in err  # nothing ran after the failure
    assert sha256(db) == before
    assert not os.path.exists(db + ".next") and not os.path.exists(db + ".next.wal")


def test_build_usage_errors(binary, tmp_path, fixture_db):
    p = run(binary, "build", str(tmp_path / "missing.duckdb"), PIPELINE)
    assert p.returncode == 1 and b"NOT_FOUND" in p.stderr
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "notes.sql").write_text("SELECT 1")  # not NN_name.sql: not a step
    p = run(binary, "build", fixture_db, str(empty))
    assert p.returncode == 1 and b"has no NN_name.sql steps" in p.stderr
    # Remote builds (test_remote_build.py): an unreachable server is a run-time failure.
    p = run(binary, "build", "--remote", "http://127.0.0.1:1", "imdb", PIPELINE)
    assert p.returncode == 1 and b"cannot reach http://127.0.0.1:1" in p.stderr
    # A build already running on the file (it holds an flock on it): refused, file untouched.
    db = str(tmp_path / "locked.duckdb")
    shutil.copy(fixture_db, db)
    before = sha256(db)
    with open(db, "rb") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        p = run(binary, "build", db, PIPELINE)
    assert p.returncode == 1 and b"another build of this file is running" in p.stderr
    assert sha256(db) == before and not os.path.exists(db + ".next")


# --------------------------------------------------------------------------------------------
# Dashboard queries: every parameter passed explicitly, answers worked out by hand from
# tests/fixtures/imdb (see the comments). The SQL files run as they are (their `-- @` header is
# a comment to DuckDB) through `duckgate query`, i.e. the server's read-only sandbox.


def query(binary, db, name, params):
    with open(os.path.join(QUERIES, name + ".sql"), "rb") as f:
        sql = f.read()
    if any(isinstance(v, list) for v in params.values()):
        # `duckgate query` binds scalars only: an array parameter becomes a list literal.
        for k, v in params.items():
            if isinstance(v, list):
                lit = "([" + ", ".join("'%s'" % s.replace("'", "''") for s in v) + "]::VARCHAR[])"
                sql = sql.replace(("$" + k).encode(), lit.encode())
        params = {k: v for k, v in params.items() if not isinstance(v, list)}
    args = ["query", db, "-"]
    if params:
        args += ["--params", json.dumps(params)]
    p = ok(run(binary, *args, stdin=sql))
    return json.loads(p.stdout)["rows"]


def header_params(name):
    """The parameter names declared in a query file's `-- @param` lines."""
    out = []
    with open(os.path.join(QUERIES, name + ".sql")) as f:
        for line in f:
            if line.startswith("-- @param "):
                out.append(line.split()[2])
    return out


# (query, params, expected rows). Fixture facts used below:
# Alice nm1: tt5 1985 actress, tt1 1994 actress, tt2 1999 actress, tt3 2005 producer,
#   tt6 2006 self -> 5 credits, era of (1985+2006)/2 = 1990s, ratings 5.5 7.5 6.0 8.2 -> 6.8.
# Bob nm2: tt1 director, tt2 director + writer -> 3 credits, 2 titles, (7.5+6.0)/2 = 6.75,
#   votes 1000+500 (each title once).
# Carol nm3 (tt1, tt2) and Dan nm4 (tt3, tt6): 2 credits; Zoe nm6 (tt4 2001) and Frank nm7
# (tt5) 1; Eve nm5 none. Genre sets: tt1 {Drama,Romance}, tt2 {Comedy,Drama}, tt3/tt6 {Comedy},
# tt5 {Comedy,Family}; tt4 and tt6 are unrated.
CASES = [
    ("search_people", {"q": "ad", "limit": 20, "era": None, "smart": False},
     [["nm0000001", "Alice Adams", 5, "1990s", 1985, 2006, "actress", 1950],
      ["nm0000006", "Zoë Ådams", 1, "2000s", 2001, 2001, "actress", None]]),
    ("search_people", {"q": "AD", "limit": 20, "era": None, "smart": True},
     [["nm0000001", "Alice Adams", 5, "1990s", 1985, 2006, "actress", 1950]]),
    ("search_people", {"q": "crè", "limit": 20, "era": None, "smart": False},
     [["nm0000003", "Carol Crème", 2, "1990s", 1994, 1999, "actress", None]]),
    ("search_people", {"q": "o'n", "limit": 20, "era": None, "smart": False},
     [["nm0000007", "Frank O'Neil", 1, "1980s", 1985, 1985, "director", 1930]]),
    ("search_people", {"q": "a", "limit": 20, "era": "1990s", "smart": False},
     [["nm0000001", "Alice Adams", 5, "1990s", 1985, 2006, "actress", 1950]]),
    ("search_people", {"q": "a", "limit": 1, "era": None, "smart": False},
     [["nm0000001", "Alice Adams", 5, "1990s", 1985, 2006, "actress", 1950]]),
    ("search_people", {"q": "--", "limit": 20, "era": None, "smart": False}, []),
    # Longer than 4 characters: the range scan instead of the precomputed tops.
    ("search_people", {"q": "Adams", "limit": 20, "era": None, "smart": False},
     [["nm0000001", "Alice Adams", 5, "1990s", 1985, 2006, "actress", 1950],
      ["nm0000006", "Zoë Ådams", 1, "2000s", 2001, 2001, "actress", None]]),
    ("search_people", {"q": "zoe ada", "limit": 20, "era": None, "smart": False},
     [["nm0000006", "Zoë Ådams", 1, "2000s", 2001, 2001, "actress", None]]),
    ("search_people", {"q": "ada", "limit": 20, "era": "2000s", "smart": False},
     [["nm0000006", "Zoë Ådams", 1, "2000s", 2001, 2001, "actress", None]]),
    ("search_people", {"q": "ada", "limit": 20, "era": "2000s", "smart": True}, []),
    ("search_people", {"q": "b", "limit": 20, "era": "1990s", "smart": True},
     [["nm0000002", "Bob Brown", 3, "1990s", 1994, 1999, "director", 1945]]),
    ("search_people", {"q": "d", "limit": 20, "era": "1990s", "smart": True}, []),
    ("search_titles", {"q": "big", "limit": 20, "era": None, "genre": None, "min_votes": 0,
                       "smart": False},
     [["tt0000001", "The Big Film", "movie", 1994, "Drama,Romance", 7.5, 1000],
      ["tt0000002", "Big Trouble", "movie", 1999, "Comedy,Drama", 6.0, 500]]),
    ("search_titles", {"q": "big", "limit": 20, "era": None, "genre": "Comedy",
                       "min_votes": 0, "smart": False},
     [["tt0000002", "Big Trouble", "movie", 1999, "Comedy,Drama", 6.0, 500]]),
    ("search_titles", {"q": "big", "limit": 20, "era": None, "genre": None,
                       "min_votes": 600, "smart": False},
     [["tt0000001", "The Big Film", "movie", 1994, "Drama,Romance", 7.5, 1000]]),
    ("search_titles", {"q": "the", "limit": 20, "era": "2000s", "genre": None,
                       "min_votes": 0, "smart": False},
     [["tt0000003", 'The "Quoted" Show', "tvSeries", 2005, "Comedy", 8.2, 20000]]),
    ("search_titles", {"q": "tiny", "limit": 20, "era": None, "genre": None, "min_votes": 0,
                       "smart": False},
     [["tt0000004", "Tiny", "short", 2001, None, None, 0]]),
    ("search_titles", {"q": "tiny", "limit": 20, "era": None, "genre": None, "min_votes": 0,
                       "smart": True}, []),
    ("search_titles", {"q": "episode", "limit": 20, "era": None, "genre": None,
                       "min_votes": 0, "smart": False}, []),
    ("search_titles", {"q": "bigtr", "limit": 20, "era": None, "genre": None,
                       "min_votes": 0, "smart": False},
     [["tt0000002", "Big Trouble", "movie", 1999, "Comedy,Drama", 6.0, 500]]),
    ("search_titles", {"q": "f", "limit": 20, "era": None, "genre": None, "min_votes": 0,
                       "smart": True},
     [["tt0000001", "The Big Film", "movie", 1994, "Drama,Romance", 7.5, 1000],
      ["tt0000005", "Adams Family Values", "movie", 1985, "Comedy,Family", 5.5, 100]]),
    ("person", {"id": "nm0000001"},
     [["nm0000001", "Alice Adams", 1950, None, "actress,producer", 5, 5, 1985, 2006, "1990s",
       "actress", 6.8, 4, 21600, "tt0000003", 'The "Quoted" Show']]),
    ("person", {"id": "nm0000005"},
     [["nm0000005", "Eve Évora", None, None, None, 0, 0, None, None, None, None, None, 0, 0,
       None, None]]),
    ("person_filmography", {"id": "nm0000001", "limit": 5000},
     [["tt0000005", "Adams Family Values", "movie", 1985, "actress", None, '["Morticia"]', 5.5,
       100, "Comedy,Family"],
      ["tt0000001", "The Big Film", "movie", 1994, "actress", None, '["Jane"]', 7.5, 1000,
       "Drama,Romance"],
      ["tt0000002", "Big Trouble", "movie", 1999, "actress", None, '["Ann"]', 6.0, 500,
       "Comedy,Drama"],
      ["tt0000003", 'The "Quoted" Show', "tvSeries", 2005, "producer", "producer", None, 8.2,
       20000, "Comedy"],
      ["tt0000006", "Episode #1.1", "tvEpisode", 2006, "self", None, '["Self"]', None, 0,
       "Comedy"]]),
    ("person_filmography", {"id": "nm0000002", "limit": 2},
     [["tt0000001", "The Big Film", "movie", 1994, "director", None, None, 7.5, 1000,
       "Drama,Romance"],
      ["tt0000002", "Big Trouble", "movie", 1999, "director", None, None, 6.0, 500,
       "Comedy,Drama"]]),
    ("person_decades", {"id": "nm0000001"},
     [["1980s", 1, 1, 5.5], ["1990s", 2, 2, 6.75], ["2000s", 2, 2, 8.2]]),
    ("compare_people", {"ids": ["nm0000002", "nm0000001"]},
     [["nm0000002", "Bob Brown", 3, 2, 1994, 1999, "1990s", "director", 6.75, 1500,
       [{"era": "1990s", "credits": 3, "avg_rating": 6.75}]],
      ["nm0000001", "Alice Adams", 5, 5, 1985, 2006, "1990s", "actress", 6.8, 21600,
       [{"era": "1980s", "credits": 1, "avg_rating": 5.5},
        {"era": "1990s", "credits": 2, "avg_rating": 6.75},
        {"era": "2000s", "credits": 2, "avg_rating": 8.2}]]]),
    ("person_directors", {"id": "nm0000001", "limit": 20},
     [["nm0000002", "Bob Brown", 2], ["nm0000007", "Frank O'Neil", 1]]),
    ("person_directors", {"id": "nm0000002", "limit": 20}, []),  # only directed himself
    ("person_costars", {"id": "nm0000001", "limit": 20},
     [["nm0000003", "Carol Crème", 2], ["nm0000004", 'Dan "The Man" Duff', 2]]),
    ("person_costars", {"id": "nm0000004", "limit": 20},
     [["nm0000001", "Alice Adams", 1]]),  # tt6 (self); tt3 she only produced
    ("similar_titles", {"id": "tt0000002", "limit": 20},
     [["tt0000003", 'The "Quoted" Show', "tvSeries", 2005, "Comedy", 0.5, 8.2, 20000],
      ["tt0000001", "The Big Film", "movie", 1994, "Drama,Romance", 0.3333, 7.5, 1000],
      ["tt0000005", "Adams Family Values", "movie", 1985, "Comedy,Family", 0.3333, 5.5, 100]]),
    ("similar_titles", {"id": "tt0000004", "limit": 20}, []),  # no genres
    ("title", {"id": "tt0000002"},
     [["tt0000002", "movie", "Big Trouble", "Gros Problème", False, 1999, None, 95,
       "Comedy,Drama", 6.0, 500, [{"nconst": "nm0000002", "name": "Bob Brown"}]]]),
    ("title", {"id": "tt0000099"}, []),
    ("title_people", {"id": "tt0000002"},
     [[1, "nm0000001", "Alice Adams", "actress", None, '["Ann"]'],
      [2, "nm0000003", "Carol Crème", "actress", None, '["Sue \\"Sunny\\" Smith"]'],
      [3, "nm0000002", "Bob Brown", "director", None, None],
      [4, "nm0000002", "Bob Brown", "writer", "screenplay", None]]),
    ("prolific", {"era": "1990s", "category": "actress", "limit": 20},
     [[1, "nm0000001", "Alice Adams", 2, 6.75], [2, "nm0000003", "Carol Crème", 2, 6.75]]),
    ("prolific", {"era": "1990s", "category": "director", "limit": 1},
     [[1, "nm0000002", "Bob Brown", 2, 6.75]]),
]


@pytest.mark.parametrize("name,params,expected", CASES,
                         ids=["%s-%d" % (c[0], i) for i, c in enumerate(CASES)])
def test_dashboard_query(binary, fixture_db, name, params, expected):
    assert sorted(params) == sorted(header_params(name)), "pass every declared parameter"
    assert query(binary, fixture_db, name, params) == expected


def test_overview(binary, fixture_db):
    rows = query(binary, fixture_db, "overview", {})
    assert len(rows) == 1
    v = json.loads(rows[0][0])
    assert v["totals"] == {"people": 7, "titles": 6, "credits": 14, "rated_titles": 4,
                           "smart_people": 2}
    assert v["titles_by_era"] == [{"era": "1980s", "titles": 1, "avg_rating": 5.5},
                                  {"era": "1990s", "titles": 2, "avg_rating": 6.75},
                                  {"era": "2000s", "titles": 3, "avg_rating": 8.2}]
    assert v["top_genres"][:2] == [{"genre": "Comedy", "titles": 4},
                                   {"genre": "Drama", "titles": 2}]
    assert v["credit_distribution"] == [{"credits": "0", "people": 1},
                                        {"credits": "1", "people": 2},
                                        {"credits": "2", "people": 2},
                                        {"credits": "3-5", "people": 2}]
    assert [p["nconst"] for p in v["most_prolific"][:2]] == ["nm0000001", "nm0000002"]
    assert v["top_rated"][0]["tconst"] == "tt0000003"


def test_every_query_file_is_tested():
    names = sorted(f[:-4] for f in os.listdir(QUERIES) if f.endswith(".sql"))
    tested = {c[0] for c in CASES} | {"overview"}
    assert names == sorted(tested)


class _ImdbDataDir:
    """dgserver.Server's fixture source: the built fixture database, served as `imdb`."""

    def __init__(self, db):
        self.db = db

    def populate(self, data_dir, names):
        os.makedirs(data_dir, exist_ok=True)
        for n in names:
            shutil.copy(self.db, os.path.join(data_dir, n + ".duckdb"))


def test_dashboard_queries_over_http(binary, fixture_db, tmp_path):
    """The same known answers through a real server's named-query route (GET /api/q/imdb/...),
    with the header's defaults applied by the server when a parameter is left out."""
    s = dgserver.Server(binary, _ImdbDataDir(fixture_db), dbs=("imdb",),
                        tmp_root=str(tmp_path),
                        extra=["--queries-dir", os.path.join(REPO, "queries"), "--cache", "off"])
    s.start()
    try:
        listing = s.get("/api/q/imdb").json()
        assert sorted(q["name"] for q in listing["queries"] if q["status"] == "ok") == \
            sorted({c[0] for c in CASES} | {"overview"})
        for name, params, expected in CASES:
            r = s.post("/api/q/imdb/" + name, json={"params": params})
            assert r.status_code == 200, (name, params, r.text)
            assert r.json()["rows"] == expected, (name, params)
        r = s.get("/api/q/imdb/search_people", params={"q": "ad"})
        assert r.status_code == 200, r.text
        assert [row[0] for row in r.json()["rows"]] == ["nm0000001", "nm0000006"]
        r = s.get("/api/q/imdb/overview")
        assert r.status_code == 200, r.text
        assert json.loads(r.json()["rows"][0][0])["totals"]["people"] == 7
        # Declared constraints are enforced before DuckDB sees anything.
        r = s.get("/api/q/imdb/person", params={"id": "x'; DROP TABLE titles"})
        assert r.status_code in (400, 422) and "PARAM" in r.json()["error"]["code"], r.text
        r = s.post("/api/q/imdb/compare_people",
                   json={"params": {"ids": ["nm1", "nm2", "nm3", "nm4", "nm5"]}})
        assert r.status_code in (400, 422) and "PARAM" in r.json()["error"]["code"], r.text
    finally:
        s.close()
    assert s.findings == []
