/* `duckgate gen imdb`: a deterministic IMDb-shaped database generated inside DuckDB.
 *
 * Everything is SQL over range(): no row is built in C, so DuckDB's threads do all the work and
 * write straight into its storage. Randomness is hash(i * 64 + salt) (DuckDB's hash of an integer
 * is a fixed function), never random(), so the same scale gives the same table contents on every
 * run and machine running the same DuckDB version.
 *
 * The shape (docs/pipeline.md):
 * - People fall in three tiers by hash: 60% have exactly one credit, 24.7% exactly two, 15.3%
 *   three or more (2.3M of 15M at scale 1), drawn from a Pareto tail capped at `cap` whose
 *   exponent is solved here so that the mean is about 6 credits per person (90M at scale 1).
 * - Each person has a hidden birth year and a career window; every credit falls in a year of
 *   that window. Titles carry a bijective "time rank" (an affine permutation of the title index)
 *   whose year grows with the rank, so a credit for year y picks a title of year y by inverting
 *   the permutation. Careers are therefore coherent in time without any join.
 * - Names come from first/last name lists (with accents, apostrophes) picked with a skew, so a
 *   prefix such as "jo" matches many people and "zb" few, as in the real data. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "data/data_int.h"

/* Tier shares and the target mean credits per person of the real dumps (90M / 15M). */
#define SHARE_ONE 0.600
#define SHARE_TWO 0.247
#define SHARE_MANY 0.153
#define MEAN_CREDITS 6.0

static long long gcd_ll(long long a, long long b)
{
    while (b) {
        long long t = a % b;
        a = b;
        b = t;
    }
    return a;
}

/* Inverse of a modulo m (gcd(a, m) == 1), by the extended Euclidean algorithm. */
static long long inverse_mod(long long a, long long m)
{
    long long t = 0, new_t = 1, r = m, new_r = a % m;
    while (new_r) {
        long long q = r / new_r, tmp = t - q * new_t;
        t = new_t;
        new_t = tmp;
        tmp = r - q * new_r;
        r = new_r;
        new_r = tmp;
    }
    return t < 0 ? t + m : t;
}

/* Mean of min(X, cap) for X Pareto(x_m = 3, alpha). */
static double capped_pareto_mean(double alpha, double cap)
{
    if (fabs(alpha - 1) < 1e-9) {
        return 3 + 3 * log(cap / 3);
    }
    return 3 + pow(3, alpha) * (pow(cap, 1 - alpha) - pow(3, 1 - alpha)) / (1 - alpha);
}

/* The Pareto exponent that gives the many-credit tier the mean that makes the overall mean
 * MEAN_CREDITS (+0.5 for the floor() the SQL applies). */
static double solve_alpha(double cap)
{
    double target = (MEAN_CREDITS - SHARE_ONE - 2 * SHARE_TWO) / SHARE_MANY + 0.5;
    double lo = 0.05, hi = 3;
    for (int i = 0; i < 80; i++) {
        double mid = (lo + hi) / 2;
        if (capped_pareto_mean(mid, cap) > target) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    return lo;
}

/* Name and word lists. Order matters: entries are picked with a skew towards the front. */
static const char *const sql_lists[] = {
    "CREATE OR REPLACE TEMP MACRO g_male_names() AS ['James','John','Robert','Michael','William',"
    "'David','Richard','Joseph','Thomas','Charles','Christopher','Daniel','Matthew','Anthony',"
    "'Mark','Donald','Steven','Paul','Andrew','Joshua','Kenneth','Kevin','Brian','George',"
    "'Timothy','Ronald','Edward','Jason','Jeffrey','Ryan','Jacob','Gary','Nicholas','Eric',"
    "'Jonathan','Stephen','Larry','Justin','Scott','Brandon','Frank','Benjamin','Gregory',"
    "'Samuel','Raymond','Patrick','Alexander','Jack','Dennis','Jerry','Tyler','Aaron','José',"
    "'Henry','Adam','Douglas','Nathan','Peter','Zachary','Kyle','Walter','Harold','Jeremy',"
    "'Ethan','Carl','Keith','Roger','Gerald','Christian','Terry','Sean','Arthur','Austin',"
    "'Noah','Lawrence','Jesse','Joe','Bryan','Billy','Jordan','Albert','Dylan','Bruce',"
    "'Gabriel','Alan','Juan','Logan','Wayne','Ralph','Roy','Eugene','Vincent','Louis','Philip',"
    "'Hiroshi','Raj','Ahmed','Luca','François','Søren','Jürgen','Björn','Ömer','Zbigniew'];\n",
    "CREATE OR REPLACE TEMP MACRO g_female_names() AS ['Mary','Patricia','Jennifer','Linda',"
    "'Elizabeth','Barbara','Susan','Jessica','Sarah','Karen','Nancy','Lisa','Betty','Margaret',"
    "'Sandra','Ashley','Kimberly','Emily','Donna','Michelle','Dorothy','Carol','Amanda',"
    "'Melissa','Deborah','Stephanie','Rebecca','Sharon','Laura','Cynthia','Kathleen','Amy',"
    "'Shirley','Angela','Helen','Anna','Brenda','Pamela','Nicole','Emma','Samantha','Katherine',"
    "'Christine','Rachel','Catherine','Carolyn','Janet','Ruth','Maria','Heather','Diane',"
    "'Virginia','Julie','Joyce','Victoria','Olivia','Kelly','Christina','Lauren','Joan',"
    "'Evelyn','Judith','Megan','Andrea','Hannah','Martha','Jacqueline','Frances','Gloria','Ann',"
    "'Teresa','Kathryn','Sara','Jean','Alice','Madison','Doris','Abigail','Julia','Judy','Grace',"
    "'Denise','Amber','Marilyn','Danielle','Sophia','Marie','Diana','Natalie','Isabella',"
    "'Charlotte','Rose','Alexis','Zoë','Chloé','Renée','Yuki','Priya','Inés','Léa','Ångela',"
    "'Małgorzata','Xiomara'];\n",
    "CREATE OR REPLACE TEMP MACRO g_last_names() AS ['Smith','Johnson','Williams','Brown','Jones',"
    "'Garcia','Miller','Davis','Rodriguez','Martinez','Hernandez','Lopez','Gonzalez','Wilson',"
    "'Anderson','Thomas','Taylor','Moore','Jackson','Martin','Lee','Perez','Thompson','White',"
    "'Harris','Sanchez','Clark','Ramirez','Lewis','Robinson','Walker','Young','Allen','King',"
    "'Wright','Scott','Torres','Nguyen','Hill','Flores','Green','Adams','Nelson','Baker','Hall',"
    "'Rivera','Campbell','Mitchell','Carter','Roberts','Gomez','Phillips','Evans','Turner',"
    "'Diaz','Parker','Cruz','Edwards','Collins','Reyes','Stewart','Morris','Morales','Murphy',"
    "'Cook','Rogers','Gutierrez','Ortiz','Morgan','Cooper','Peterson','Bailey','Reed','Kelly',"
    "'Howard','Ramos','Kim','Cox','Ward','Richardson','Watson','Brooks','Chavez','Wood','James',"
    "'Bennett','Gray','Mendoza','Ruiz','Hughes','Price','Alvarez','Castillo','Sanders','Patel',"
    "'Myers','Long','Ross','Foster','Jiménez','Müller','Schmidt','Schneider','Fischer','Weber',"
    "'Meyer','Wagner','Becker','Dubois','Lefèvre','Moreau','Girard','Rossi','Russo','Ferrari',"
    "'Esposito','Bianchi','Romano','Tanaka','Suzuki','Watanabe','Yamamoto','Kowalski','Nowak',"
    "'Wiśniewski','Novák','Dvořák','Andersson','Johansson','Karlsson','Nielsen','Jensen',"
    "'Hansen','Sørensen','O''Brien','O''Connor','Ó Súilleabháin','Fernández','Peña','Núñez',"
    "'Muñoz','Kumar','Singh','Sharma','Gupta','Chen','Wang','Li','Zhang','Liu','Yang','Huang',"
    "'Zhao','Wu','Zhou','Ivanov','Smirnov','Petrov','Popescu','Nagy','Kovács','Yılmaz','Kaya',"
    "'Demir','Şahin','Çelik','Öztürk','da Silva','Santos','Oliveira','Souza','Pereira','Costa',"
    "'Almeida','Zbrowski','Quintero','Underwood','Vasquez','Xu','Ybarra'];\n",
    "CREATE OR REPLACE TEMP MACRO g_adj() AS ['Dark','Last','Lost','Secret','Silent','Little',"
    "'Great','Golden','Broken','Hidden','Wild','Blue','Red','Black','White','Long','Final',"
    "'Eternal','Lonely','Crazy','Perfect','Sweet','Bitter','Deadly','Strange','Brave',"
    "'Forgotten','Midnight','Summer','Winter','Endless','Invisible','Electric','Savage','Quiet',"
    "'Burning','Frozen','Holy','Empty','Wicked'];\n",
    "CREATE OR REPLACE TEMP MACRO g_noun() AS ['Night','Love','War','Road','House','City',"
    "'Heart','Man','Woman','Girl','Boy','Dream','Story','Game','Life','World','River','Sun',"
    "'Moon','Star','Sea','Island','Garden','Door','Shadow','Fire','Storm','Ghost','King','Queen',"
    "'Kingdom','Empire','Family','Journey','Truth','Lies','Blood','Rain','Snow','Wind','Sky',"
    "'Earth','Light','Mountain','Valley','Town','Street','Train','Bridge','Mirror','Song',"
    "'Dance','Hunter','Stranger','Soldier','Detective','Angel','Devil','Wolf','Dragon',"
    "'Machine','Escape','Return','Revenge','Promise'];\n",
    /* The 28 genres of the dumps, most frequent first. */
    "CREATE OR REPLACE TEMP MACRO g_genre() AS ['Drama','Comedy','Documentary','Talk-Show',"
    "'Romance','Action','Family','Crime','Animation','Reality-TV','Adventure','Thriller','Music',"
    "'Horror','News','Game-Show','Mystery','Fantasy','Sport','History','Biography','Short',"
    "'Sci-Fi','Adult','Musical','Western','War','Film-Noir'];\n",
};

/* Deterministic helpers and the per-person / per-credit functions (constants come from the
 * scale-dependent header that gen_imdb prepends). */
static const char *const sql_macros[] = {
    /* Uniform in [0, 1) from 53 bits of DuckDB's hash of ONE integer (a good 64-bit mixer):
     * hash(a, b) only combines the two hashes weakly, so its streams for different salts are
     * correlated. Salts are < 64, credit indexes < 65536 (the cap). */
    "CREATE OR REPLACE TEMP MACRO g_u(a, b) AS "
    "(hash(a * 64 + b) >> 11)::DOUBLE / 9007199254740992.0;\n",
    "CREATE OR REPLACE TEMP MACRO g_u3(a, b, c) AS "
    "(hash((a * 65536 + b) * 64 + c) >> 11)::DOUBLE / 9007199254740992.0;\n",
    /* A skewed pick from a list: front entries are common. */
    "CREATE OR REPLACE TEMP MACRO g_pick(l, u) AS l[1 + floor(len(l) * pow(u, 2.2))::BIGINT];\n",
    /* Names are less skewed: the commonest first name is about 3% of people, as in the dumps. */
    "CREATE OR REPLACE TEMP MACRO g_pick_name(l, u) AS "
    "l[1 + floor(len(l) * pow(u, 1.3))::BIGINT];\n",
    "CREATE OR REPLACE TEMP MACRO g_nconst(p) AS printf('nm%07d', p + 1);\n",
    "CREATE OR REPLACE TEMP MACRO g_tconst(t) AS printf('tt%07d', t + 1);\n",
    /* Credits per person: the three tiers. */
    "CREATE OR REPLACE TEMP MACRO g_credits(p) AS CASE WHEN g_u(p, 1) < 0.600 THEN 1 "
    "WHEN g_u(p, 1) < 0.847 THEN 2 "
    "ELSE least(g_cap(), floor(3.0 / pow(1.0 - g_u(p, 2), 1.0 / g_alpha())))::BIGINT END;\n",
    "CREATE OR REPLACE TEMP MACRO g_birth(p) AS "
    "1860 + floor(145 * pow(g_u(p, 3), 0.45))::INTEGER;\n",
    "CREATE OR REPLACE TEMP MACRO g_career_start(p) AS "
    "g_birth(p) + 18 + floor(12 * g_u(p, 4))::INTEGER;\n",
    "CREATE OR REPLACE TEMP MACRO g_career_len(k) AS "
    "least(70, 2 + floor(4 * sqrt(k)))::INTEGER;\n",
    "CREATE OR REPLACE TEMP MACRO g_is_female(p) AS g_u(p, 8) < 0.45;\n",
    /* Category from a uniform: roughly the dumps' mix. */
    "CREATE OR REPLACE TEMP MACRO g_cat(u, female) AS CASE "
    "WHEN u < 0.48 THEN CASE WHEN female THEN 'actress' ELSE 'actor' END "
    "WHEN u < 0.60 THEN 'self' WHEN u < 0.70 THEN 'writer' WHEN u < 0.78 THEN 'director' "
    "WHEN u < 0.85 THEN 'producer' WHEN u < 0.89 THEN 'composer' "
    "WHEN u < 0.93 THEN 'cinematographer' WHEN u < 0.96 THEN 'editor' "
    "WHEN u < 0.98 THEN 'production_designer' ELSE 'casting_director' END;\n",
    "CREATE OR REPLACE TEMP MACRO g_profession(cat) AS CASE cat WHEN 'self' THEN 'miscellaneous' "
    "ELSE cat END;\n",
    /* Year of title index t: from its time rank; grows like rank^(1/4), most titles recent. */
    "CREATE OR REPLACE TEMP MACRO g_title_year(t) AS least(2025, 1890 + floor(136 * "
    "pow(((g_a() * t + g_b()) % g_nt())::DOUBLE / g_nt(), 0.25))::INTEGER);\n",
    /* The title of credit j of person p: a year in the career window, then a title of that
     * year by inverting the time-rank permutation. */
    "CREATE OR REPLACE TEMP MACRO g_credit_year(p, j, cs, len) AS "
    "greatest(1890, least(2025, cs + floor(len * g_u3(p, j, 5))::INTEGER));\n",
    "CREATE OR REPLACE TEMP MACRO g_rank_of_year(y, v) AS "
    "least(g_nt() - 1, floor(g_nt() * pow((y - 1890 + v) / 136.0, 4.0))::BIGINT);\n",
    "CREATE OR REPLACE TEMP MACRO g_title_of_rank(q) AS "
    "(g_ainv() * (((q - g_b()) % g_nt() + g_nt()) % g_nt())) % g_nt();\n",
    "CREATE OR REPLACE TEMP MACRO g_credit_title(p, j, cs, len) AS "
    "g_title_of_rank(g_rank_of_year(g_credit_year(p, j, cs, len), g_u3(p, j, 6)));\n",
};

/* One statement per table (each gets its own progress bar). */
typedef struct gen_step {
    const char *name;
    const char *sql;
} gen_step;

static const gen_step gen_steps[] = {
    {"name_basics",
     "CREATE OR REPLACE TABLE name_basics AS "
     "WITH pp AS (SELECT p, g_credits(p) AS k, g_birth(p) AS birth, g_career_start(p) AS cs, "
     "g_is_female(p) AS female, g_u(p, 1) AS tier FROM range(g_np()) r(p)), "
     "p2 AS (SELECT *, g_career_len(k) AS len, g_cat(g_u(p, 7), female) AS cat FROM pp) "
     "SELECT g_nconst(p) AS nconst, "
     "CASE WHEN female THEN g_pick_name(g_female_names(), g_u(p, 9)) ELSE "
     "g_pick_name(g_male_names(), g_u(p, "
     "9)) END "
     "|| CASE WHEN g_u(p, 10) < 0.05 THEN ' ' || chr(65 + floor(26 * g_u(p, 11))::INTEGER) || '.' "
     "ELSE '' END || ' ' || g_pick_name(g_last_names(), g_u(p, 12)) AS primaryName, "
     /* Real dumps know few birth years, mostly of prolific people. */
     "CASE WHEN g_u(p, 13) < CASE WHEN k >= 3 THEN 0.7 WHEN k = 2 THEN 0.3 ELSE 0.1 END "
     "THEN birth END::INTEGER AS birthYear, "
     "CASE WHEN g_u(p, 13) < CASE WHEN k >= 3 THEN 0.7 WHEN k = 2 THEN 0.3 ELSE 0.1 END "
     "AND birth < 1950 AND birth + 45 + floor(50 * g_u(p, 14)) <= 2025 "
     "THEN birth + 45 + floor(50 * g_u(p, 14))::INTEGER END::INTEGER AS deathYear, "
     "array_to_string(list_distinct([g_profession(cat)] || CASE WHEN g_u(p, 15) < 0.3 THEN "
     "[g_profession(g_cat(g_u(p, 16), female))] ELSE [] END), ',') AS primaryProfession, "
     "CASE WHEN g_u(p, 17) < 0.03 THEN NULL ELSE array_to_string(list_transform(range(least(k, "
     "4)), j -> g_tconst(g_credit_title(p, j, cs, len))), ',') END AS knownForTitles "
     "FROM p2"},
    {"title_basics",
     "CREATE OR REPLACE TABLE title_basics AS "
     "WITH tt AS (SELECT t, g_u(t, 21) AS ut, g_title_year(t) AS y FROM range(g_nt()) r(t)), "
     "t2 AS (SELECT *, CASE WHEN ut < 0.70 THEN 'tvEpisode' WHEN ut < 0.79 THEN 'short' "
     "WHEN ut < 0.86 THEN 'movie' WHEN ut < 0.89 THEN 'video' WHEN ut < 0.915 THEN 'tvSeries' "
     "WHEN ut < 0.93 THEN 'tvMovie' WHEN ut < 0.945 THEN 'tvMiniSeries' "
     "WHEN ut < 0.955 THEN 'tvSpecial' WHEN ut < 0.965 THEN 'videoGame' WHEN ut < 0.975 THEN "
     "'tvShort' ELSE 'movie' END AS kind, g_u(t, 22) AS uw FROM tt), "
     "t3 AS (SELECT *, CASE WHEN kind = 'tvEpisode' AND g_u(t, 23) < 0.5 THEN "
     "'Episode #' || (1 + floor(12 * g_u(t, 24))::INTEGER) || '.' || (1 + floor(24 * g_u(t, "
     "25))::INTEGER) "
     "WHEN uw < 0.30 THEN 'The ' || g_pick(g_adj(), g_u(t, 26)) || ' ' || "
     "g_pick(g_noun(), g_u(t, 27)) "
     "WHEN uw < 0.50 THEN g_pick(g_noun(), g_u(t, 27)) || ' of the ' || "
     "g_pick(g_noun(), g_u(t, 28)) "
     "WHEN uw < 0.65 THEN g_pick(g_adj(), g_u(t, 26)) || ' ' || g_pick(g_noun(), g_u(t, 27)) "
     "WHEN uw < 0.80 THEN 'The ' || g_pick(g_noun(), g_u(t, 27)) "
     "WHEN uw < 0.90 THEN g_pick(g_noun(), g_u(t, 27)) || ' ' || (2 + floor(4 * g_u(t, "
     "29))::INTEGER) "
     "ELSE g_pick_name(g_female_names(), g_u(t, 30)) || '''s ' || g_pick(g_noun(), g_u(t, 27)) "
     "END AS title FROM t2) "
     "SELECT g_tconst(t) AS tconst, kind AS titleType, title AS primaryTitle, "
     "CASE WHEN g_u(t, 31) < 0.05 THEN g_pick(g_noun(), g_u(t, 28)) || ' ' || "
     "g_pick(g_adj(), g_u(t, 26)) ELSE title END AS originalTitle, "
     "g_u(t, 32) < 0.015 AS isAdult, "
     "CASE WHEN g_u(t, 33) < 0.03 THEN NULL ELSE y END::INTEGER AS startYear, "
     "CASE WHEN kind IN ('tvSeries', 'tvMiniSeries') AND g_u(t, 33) >= 0.03 AND "
     "y + floor(12 * g_u(t, 34)) <= 2025 AND g_u(t, 35) < 0.6 "
     "THEN y + floor(12 * g_u(t, 34))::INTEGER END::INTEGER AS endYear, "
     "CASE WHEN g_u(t, 36) < 0.35 THEN NULL WHEN kind IN ('movie', 'tvMovie', 'video') THEN "
     "70 + floor(80 * g_u(t, 37)) WHEN kind IN ('short', 'tvShort') THEN "
     "3 + floor(27 * g_u(t, 37)) ELSE 20 + floor(40 * g_u(t, 37)) END::INTEGER "
     "AS runtimeMinutes, "
     "CASE WHEN g_u(t, 38) < 0.05 THEN NULL ELSE array_to_string(list_sort(list_distinct("
     "[g_pick(g_genre(), g_u(t, 39)), g_pick(g_genre(), g_u(t, 40)), "
     "g_pick(g_genre(), g_u(t, 41))][1:1 + floor(3 * g_u(t, 42))::INTEGER])), ',') END "
     "AS genres "
     "FROM t3"},
    {"title_principals",
     "CREATE OR REPLACE TABLE title_principals AS "
     "WITH pp AS (SELECT p, g_credits(p) AS k, g_career_start(p) AS cs, g_is_female(p) AS female "
     "FROM range(g_np()) r(p)), "
     "p2 AS (SELECT p, cs, female, g_career_len(k) AS len, g_cat(g_u(p, 7), female) AS cat, "
     "unnest(range(k)) AS j FROM pp), "
     "c AS (SELECT p, j, female, g_credit_title(p, j, cs, len) AS t, "
     "CASE WHEN g_u3(p, j, 10) < 0.85 THEN cat ELSE g_cat(g_u3(p, j, 11), female) END "
     "AS category FROM p2) "
     "SELECT g_tconst(t) AS tconst, (1 + floor(10 * g_u3(p, j, 12)))::INTEGER AS ordering, "
     "g_nconst(p) AS nconst, category, "
     "CASE category WHEN 'writer' THEN CASE WHEN g_u3(p, j, 13) < 0.4 THEN 'screenplay' "
     "WHEN g_u3(p, j, 13) < 0.6 THEN 'story' WHEN g_u3(p, j, 13) < 0.7 THEN 'novel' END "
     "WHEN 'producer' THEN CASE WHEN g_u3(p, j, 13) < 0.5 THEN 'producer' "
     "WHEN g_u3(p, j, 13) < 0.8 THEN 'executive producer' ELSE 'co-producer' END "
     "WHEN 'cinematographer' THEN CASE WHEN g_u3(p, j, 13) < 0.3 THEN "
     "'director of photography' END END AS job, "
     "CASE WHEN category IN ('actor', 'actress') THEN '[\"' || CASE WHEN g_u3(p, j, 14) < 0.5 "
     "THEN g_pick_name(g_female_names(), g_u3(p, j, 15)) ELSE g_pick_name(g_male_names(), g_u3(p, "
     "j, 15)) "
     "END || "
     "CASE WHEN g_u3(p, j, 16) < 0.5 THEN ' ' || g_pick_name(g_last_names(), g_u3(p, j, 17)) ELSE "
     "'' "
     "END "
     "|| '\"]' WHEN category = 'self' THEN CASE WHEN g_u3(p, j, 14) < 0.8 THEN '[\"Self\"]' "
     "ELSE '[\"Self - Host\"]' END END AS characters "
     "FROM c"},
    {"title_ratings",
     "CREATE OR REPLACE TABLE title_ratings AS "
     "SELECT g_tconst(t) AS tconst, round(greatest(1.0, least(10.0, 6.2 + 2.2 * (g_u(t, 51) + "
     "g_u(t, 52) + g_u(t, 53) - 1.5))), 1)::DOUBLE AS averageRating, "
     "least(3000000, floor(5.0 / pow(1.0 - g_u(t, 54), 1.15)))::INTEGER AS numVotes "
     "FROM range(g_nt()) r(t) WHERE g_u(t, 50) < g_rated_share()"},
    {"title_crew",
     /* list + list_sort/list_distinct: much cheaper than string_agg(DISTINCT .. ORDER BY ..). */
     "CREATE OR REPLACE TABLE title_crew AS "
     "SELECT b.tconst, d.directors, d.writers FROM title_basics b LEFT JOIN ("
     "SELECT tconst, NULLIF(array_to_string(list_sort(list_distinct(list(nconst) FILTER "
     "(WHERE category = 'director'))), ','), '') AS directors, "
     "NULLIF(array_to_string(list_sort(list_distinct(list(nconst) FILTER "
     "(WHERE category = 'writer'))), ','), '') AS writers FROM title_principals "
     "WHERE category IN ('director', 'writer') GROUP BY tconst) d USING (tconst) "
     "ORDER BY b.tconst"},
};

/* The scale-dependent constants as macros (inlined as constants by DuckDB's binder). */
static dg_rc_t constants_sql(double scale, dg_buf_t *b)
{
    long long np = llround(15e6 * scale), nt = llround(11e6 * scale);
    np = np < 10 ? 10 : np;
    nt = nt < 10 ? 10 : nt;
    /* Heavy tail cap: 20000 credits at scale 1, never under 1000 (a person cannot have more
     * credits than a small database has titles to give, but the tail must stay visible). */
    long long cap = llround(20000 * sqrt(scale));
    cap = cap < 1000 ? 1000 : cap > 65535 ? 65535 : cap;
    double alpha = solve_alpha((double)cap);
    long long a = llround(0.6180339887 * (double)nt);
    while (gcd_ll(a, nt) != 1) {
        a++;
    }
    long long b_off = llround(0.3771 * (double)nt) % nt;
    return dg_buf_printf(b,
                         "CREATE OR REPLACE TEMP MACRO g_np() AS %lld::BIGINT;\n"
                         "CREATE OR REPLACE TEMP MACRO g_nt() AS %lld::BIGINT;\n"
                         "CREATE OR REPLACE TEMP MACRO g_cap() AS %lld::BIGINT;\n"
                         "CREATE OR REPLACE TEMP MACRO g_alpha() AS %.9f;\n"
                         "CREATE OR REPLACE TEMP MACRO g_a() AS %lld::BIGINT;\n"
                         "CREATE OR REPLACE TEMP MACRO g_ainv() AS %lld::BIGINT;\n"
                         "CREATE OR REPLACE TEMP MACRO g_b() AS %lld::BIGINT;\n"
                         "CREATE OR REPLACE TEMP MACRO g_rated_share() AS %.9f;\n",
                         np, nt, cap, alpha, a, inverse_mod(a, nt), b_off, 1.5 / 11.0);
}

dg_rc_t dg_data_gen_imdb(double scale, const char *out_path, const dg_data_opts_t *o,
                         dg_error_t *err)
{
    dg_rc_t rc;
    dg_buf_t hdr;
    dg_db_build_t *b = NULL;
    dg_data__bar_t bar;
    dg_data__step_result_t res[sizeof gen_steps / sizeof gen_steps[0]];
    size_t n_res = 0;
    char *next = NULL;

    dg_buf_init(&hdr, 0);
    if (!(scale > 0 && scale <= 10)) {
        return dg_error_set(err, DG_BAD_REQUEST, "scale must be in (0, 10], got %g", scale);
    }
    next = dg_data__next_path(out_path);
    if (!next) {
        rc = dg_error_set(err, DG_NOMEM, "out of memory");
        goto out;
    }
    dg_data__remove_db(next);
    rc = constants_sql(scale, &hdr);
    for (size_t i = 0; rc == DG_OK && i < sizeof sql_lists / sizeof sql_lists[0]; i++) {
        rc = dg_buf_puts(&hdr, sql_lists[i]);
    }
    for (size_t i = 0; rc == DG_OK && i < sizeof sql_macros / sizeof sql_macros[0]; i++) {
        rc = dg_buf_puts(&hdr, sql_macros[i]);
    }
    if (rc != DG_OK) {
        dg_error_set(err, rc, "out of memory");
        goto out;
    }
    rc = dg_data__open(next, o, false, &b, err);
    if (rc != DG_OK) {
        goto out;
    }
    rc = dg_db_build_run(b, hdr.p, NULL, NULL, NULL, err);
    if (rc != DG_OK) {
        goto out;
    }
    dg_data__bar_init(&bar, o);
    for (size_t i = 0; i < sizeof gen_steps / sizeof gen_steps[0]; i++) {
        dg_error_t one;
        dg_error_clear(&one);
        rc = dg_data__run_step(b, &bar, gen_steps[i].name, gen_steps[i].sql, &res[n_res], &one);
        if (rc != DG_OK) {
            dg_error_set(err, rc, "generating %s: %s", gen_steps[i].name, one.msg);
            goto out;
        }
        n_res++;
    }
    rc = dg_data__finish(&b, bar.out, res, n_res, next, out_path, err);
out:
    dg_data__release(b, next, rc != DG_OK);
    dg_buf_free(&hdr);
    return rc;
}
