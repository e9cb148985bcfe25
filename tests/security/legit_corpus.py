"""The over-blocking corpus: legitimate analytical SQL the guard must accept, as data.

Used by test_legit_queries.py (every query passes the guard and runs through the server) and by
test_properties.py (mutations of these seeds). Written against the demo shop schema, with the contrib
extensions in EXTENSIONS installed.
"""

from __future__ import annotations

EXTENSIONS = (
    "pg_trgm", "fuzzystrmatch", "vector", "hstore", "tsm_system_rows", "ltree", "cube", "earthdistance", "unaccent",
    "citext",
)  # fmt: skip

LEGIT: dict[str, str] = {
    # aggregates and grouping
    "count": "SELECT count(*) FROM shop.orders",
    "group-by": "SELECT status, count(*), sum(total) FROM shop.orders GROUP BY status ORDER BY 2 DESC",
    "count-distinct": "SELECT count(DISTINCT customer_id) FROM shop.orders",
    "filter": "SELECT count(*) FILTER (WHERE status = 'paid') AS paid, count(*) AS all_orders FROM shop.orders",
    "rollup": "SELECT status, date_trunc('month', placed_at) AS month, sum(total), grouping(status) "
    "FROM shop.orders GROUP BY ROLLUP (status, 2) ORDER BY 1, 2 LIMIT 30",
    "cube": "SELECT category, active, count(*) FROM shop.products GROUP BY CUBE (category, active)",
    "grouping-sets": "SELECT country, count(*) FROM shop.customers GROUP BY GROUPING SETS ((country), ())",
    "group-by-distinct": "SELECT country, count(*) FROM shop.customers GROUP BY DISTINCT country, ROLLUP (country)",
    "having": "SELECT customer_id, sum(total) FROM shop.orders GROUP BY 1 HAVING sum(total) > 500 ORDER BY 2 DESC",
    "statistics": "SELECT round(avg(total), 2), round(stddev(total), 2), corr(total, customer_id), "
    "regr_slope(total, order_id) FROM shop.orders",
    "bool-aggregates": "SELECT bool_and(active), bool_or(active), every(price > 0) FROM shop.products",
    "any-value": "SELECT category, any_value(name) FROM shop.products GROUP BY category",
    "string-agg": "SELECT country, string_agg(email, ', ' ORDER BY email) FROM shop.customers GROUP BY 1",
    "array-agg": "SELECT order_id, array_agg(product_id ORDER BY line_no) FROM shop.order_items GROUP BY 1 LIMIT 10",
    # window functions
    "rank": "SELECT order_id, customer_id, total, rank() OVER (PARTITION BY customer_id ORDER BY total DESC) "
    "FROM shop.orders ORDER BY customer_id, 4 LIMIT 50",
    "running-total": "WITH d AS (SELECT placed_at::date AS day, sum(total) AS revenue FROM shop.orders GROUP BY 1) "
    "SELECT day, revenue, sum(revenue) OVER (ORDER BY day) AS running FROM d ORDER BY day",
    "lag-lead": "SELECT order_id, total, lag(total) OVER w, lead(total, 2) OVER w FROM shop.orders "
    "WINDOW w AS (ORDER BY order_id) LIMIT 20",
    "ntile": "SELECT order_id, ntile(4) OVER (ORDER BY total), percent_rank() OVER (ORDER BY total), "
    "cume_dist() OVER (ORDER BY total) FROM shop.orders LIMIT 20",
    "frames": "SELECT order_id, avg(total) OVER (ORDER BY order_id ROWS BETWEEN 3 PRECEDING AND 3 FOLLOWING), "
    "first_value(total) OVER w, last_value(total) OVER w, nth_value(total, 2) OVER w FROM shop.orders "
    "WINDOW w AS (PARTITION BY status ORDER BY placed_at RANGE BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) "
    "LIMIT 20",
    "row-number-dedup": "SELECT * FROM (SELECT o.*, row_number() OVER (PARTITION BY customer_id ORDER BY placed_at "
    "DESC) AS rn FROM shop.orders o) s WHERE rn = 1 LIMIT 20",
    # ordered-set and hypothetical-set aggregates
    "percentile": "SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY total), "
    "percentile_disc(ARRAY[0.25, 0.75]) WITHIN GROUP (ORDER BY total) FROM shop.orders",
    "mode": "SELECT mode() WITHIN GROUP (ORDER BY status) FROM shop.orders",
    "hypothetical-rank": "SELECT rank(100) WITHIN GROUP (ORDER BY total), "
    "percent_rank(100) WITHIN GROUP (ORDER BY total) FROM shop.orders",
    # CTEs, recursion, sub-queries, LATERAL, set operations
    "recursive-count": "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100) "
    "SELECT sum(i) FROM n",
    "recursive-calendar": "WITH RECURSIVE d(day) AS (SELECT date '2024-01-01' UNION ALL "
    "SELECT day + 1 FROM d WHERE day < date '2024-01-31') SELECT d.day, count(o.order_id) FROM d "
    "LEFT JOIN shop.orders o ON o.placed_at::date = d.day GROUP BY 1 ORDER BY 1",
    "recursive-search-cycle": "WITH RECURSIVE t(n, parent) AS (VALUES (1, NULL::int), (2, 1), (3, 2)), "
    "walk(n, depth) AS (SELECT n, 0 FROM t WHERE parent IS NULL UNION ALL "
    "SELECT t.n, walk.depth + 1 FROM t JOIN walk ON t.parent = walk.n) "
    "SEARCH DEPTH FIRST BY n SET ordercol CYCLE n SET is_cycle USING path SELECT * FROM walk",
    "cte-materialized": "WITH big AS MATERIALIZED (SELECT customer_id, sum(total) AS spent FROM shop.orders "
    "GROUP BY 1), top AS NOT MATERIALIZED (SELECT * FROM big ORDER BY spent DESC LIMIT 5) SELECT * FROM top",
    "lateral-top-n": "SELECT c.customer_id, o.order_id, o.total FROM shop.customers c, LATERAL "
    "(SELECT * FROM shop.orders WHERE customer_id = c.customer_id ORDER BY total DESC LIMIT 3) o LIMIT 30",
    "lateral-series": "SELECT p.product_id, s.n FROM shop.products p CROSS JOIN LATERAL generate_series(1, 2) AS s(n) "
    "WHERE p.product_id < 5",
    "exists": "SELECT count(*) FROM shop.customers c WHERE EXISTS (SELECT 1 FROM shop.orders o "
    "WHERE o.customer_id = c.customer_id AND o.status = 'cancelled')",
    "not-in": "SELECT count(*) FROM shop.products WHERE product_id NOT IN (SELECT product_id FROM shop.order_items)",
    "correlated": "SELECT c.email, (SELECT max(total) FROM shop.orders o WHERE o.customer_id = c.customer_id) "
    "FROM shop.customers c LIMIT 10",
    "union": "SELECT email AS label FROM shop.customers WHERE customer_id < 3 UNION SELECT sku FROM shop.products "
    "WHERE product_id < 3 ORDER BY 1",
    "intersect-except": "(SELECT customer_id FROM shop.orders WHERE status = 'paid' INTERSECT "
    "SELECT customer_id FROM shop.orders WHERE total > 100) EXCEPT SELECT -1",
    "distinct-on": "SELECT DISTINCT ON (customer_id) customer_id, order_id, placed_at FROM shop.orders "
    "ORDER BY customer_id, placed_at DESC LIMIT 10",
    "fetch-with-ties": "SELECT order_id, total FROM shop.orders ORDER BY total DESC NULLS LAST "
    "OFFSET 1 ROWS FETCH FIRST 5 ROWS WITH TIES",
    # generate_series and time
    "calendar": "SELECT d::date, count(o.order_id) FROM generate_series(timestamp '2024-01-01', "
    "timestamp '2024-01-07', interval '1 day') AS d LEFT JOIN shop.orders o ON o.placed_at::date = d::date "
    "GROUP BY 1 ORDER BY 1",
    "date-functions": "SELECT date_trunc('week', placed_at), extract(isodow FROM placed_at), age(shipped_at, "
    "placed_at), to_char(placed_at, 'YYYY-MM-DD HH24:MI'), date_bin('15 minutes', placed_at, "
    "timestamptz '2024-01-01'), placed_at AT TIME ZONE 'Europe/Berlin' FROM shop.orders LIMIT 10",
    "make-date": "SELECT make_date(2024, 2, 29), justify_interval(interval '40 days'), now() - interval '1 day' "
    "< now()",
    "ranges": "SELECT count(*) FROM shop.orders WHERE tstzrange(placed_at, shipped_at) && "
    "tstzrange('2024-01-01', '2024-01-02')",
    "range-agg": "SELECT range_agg(int8range(order_id, order_id + 2)) FROM shop.orders WHERE order_id < 10",
    # text, arrays, JSON, XML
    "strings": "SELECT lower(email), upper(country), split_part(email, '@', 2), regexp_replace(full_name, '\\d+', "
    "'#'), initcap(full_name), lpad(customer_id::text, 6, '0'), concat_ws(' / ', country, email), "
    "format('%s <%s>', full_name, email), left(email, 5), position('@' in email) FROM shop.customers LIMIT 5",
    "regex": "SELECT count(*) FROM shop.customers WHERE email ~ '^customer1[0-9]+@' OR email ILIKE 'CUSTOMER2%' "
    "OR full_name SIMILAR TO 'Customer (3|4)%'",
    "split-to-table": "SELECT regexp_split_to_table('a,b;c', '[,;]'), string_to_table('x y', ' ')",
    "arrays": "SELECT tags, cardinality(tags), 'vip' = ANY (tags), tags && ARRAY['newsletter'], unnest(tags) "
    "FROM shop.customers WHERE tags <> '{}' LIMIT 10",
    "jsonb": "SELECT preferences ->> 'lang', preferences @> '{\"newsletter\": true}', "
    "jsonb_path_query_first(attributes, '$.weight_g'), jsonb_build_object('id', product_id, 'sku', sku), "
    "attributes -> 'colors' -> 0 FROM shop.products p LEFT JOIN shop.customers c ON c.customer_id = p.product_id "
    "LIMIT 5",
    "jsonb-agg": "SELECT jsonb_agg(jsonb_build_object('sku', sku, 'price', price) ORDER BY price DESC) "
    "FROM (SELECT * FROM shop.products LIMIT 3) p",
    "jsonb-each": "SELECT key, value FROM shop.products, jsonb_each(attributes) WHERE product_id = 1",
    "json-table": "SELECT p.product_id, j.* FROM shop.products p, JSON_TABLE(p.attributes, '$' COLUMNS ("
    "weight int PATH '$.weight_g', colors jsonb PATH '$.colors')) AS j WHERE p.product_id < 4",
    "sql-json": "SELECT JSON_OBJECT('id': order_id, 'status': status), JSON_ARRAYAGG(order_id), "
    "'{\"a\":1}' IS JSON OBJECT, JSON_VALUE(jsonb '{\"a\": 5}', '$.a' RETURNING int), "
    "JSON_EXISTS(jsonb '{\"a\": 5}', '$.a') FROM shop.orders WHERE order_id < 3 GROUP BY order_id, status",
    # (XML functions need a server built with libxml, which the embedded test server is not)
    "jsonpath": "SELECT product_id, jsonb_path_query(attributes, '$.colors[*] ? (@ != \"white\")') "
    "FROM shop.products WHERE jsonb_path_exists(attributes, '$.weight_g ? (@ > 500)') LIMIT 5",
    "full-text": "SELECT product_id, ts_rank(to_tsvector('english', coalesce(description, '')), "
    "plainto_tsquery('english', 'reliable lamp')) FROM shop.products WHERE to_tsvector('english', "
    "coalesce(description, '')) @@ plainto_tsquery('english', 'lamp') LIMIT 5",
    "numbers": "SELECT round(price, 0), width_bucket(price, 0, 500, 10), mod(product_id, 7), power(2, 10), "
    "greatest(price, 10), least(price, 10), nullif(category, 'audio'), coalesce(description, '-') "
    "FROM shop.products LIMIT 5",
    "case": "SELECT CASE WHEN total > 500 THEN 'big' WHEN total > 100 THEN 'medium' ELSE 'small' END AS size, "
    "count(*) FROM shop.orders GROUP BY 1",
    # harmless volatile functions on the allow-list
    "random-sample": "SELECT order_id FROM shop.orders ORDER BY random() LIMIT 5",
    "tablesample": "SELECT count(*) FROM shop.orders TABLESAMPLE BERNOULLI (10) REPEATABLE (42)",
    "uuid-and-clock": "SELECT gen_random_uuid(), clock_timestamp() >= now(), uuidv7() IS NOT NULL",
    "sizes": "SELECT relname, pg_size_pretty(pg_total_relation_size(c.oid)) FROM pg_class c "
    "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'shop' AND c.relkind = 'r' "
    "ORDER BY pg_total_relation_size(c.oid) DESC",
    "replication-state": "SELECT pg_is_in_recovery(), pg_last_wal_replay_lsn(), pg_last_xact_replay_timestamp(), "
    "CASE WHEN pg_is_in_recovery() THEN pg_is_wal_replay_paused() END, "
    "CASE WHEN pg_is_in_recovery() THEN pg_get_wal_replay_pause_state() END, "
    "CASE WHEN pg_is_in_recovery() THEN pg_last_wal_receive_lsn() ELSE pg_current_wal_lsn() END IS NOT NULL",
    "wal-position": "SELECT pg_current_wal_insert_lsn() >= pg_current_wal_flush_lsn()",
    # the catalogue, as a reader sees it
    "information-schema": "SELECT table_name, column_name, data_type FROM information_schema.columns "
    "WHERE table_schema = 'shop' ORDER BY table_name, ordinal_position",
    "pg-stats": "SELECT attname, n_distinct FROM pg_stats WHERE schemaname = 'shop' AND tablename = 'orders'",
    "view-definition": "SELECT pg_get_viewdef('shop.order_summary'::regclass, true), to_regclass('shop.orders'), "
    "format_type('numeric'::regtype, 786438), current_setting('search_path')",
    "view": "SELECT * FROM shop.order_summary ORDER BY order_id LIMIT 5",
    "table": "TABLE shop.products",
    "values": "VALUES (1, 'one'), (2, 'two')",
    "input-validity": "SELECT pg_input_is_valid('2024-02-30', 'date'), pg_input_is_valid('42', 'integer')",
    # extension functions and operators that are not volatile
    "trigram": "SELECT name, similarity(name, 'eco lamp') FROM shop.products WHERE name % 'eco lamp' "
    "ORDER BY 2 DESC LIMIT 5",
    "levenshtein": "SELECT levenshtein('kitten', 'sitting'), soundex('Robert'), metaphone('Thompson', 10)",
    "vector": "SELECT '[1,2,3]'::vector <-> '[3,2,1]'::vector, cosine_distance('[1,0]'::vector, '[0,1]'::vector), "
    "l2_distance('[1,1]'::vector, '[2,2]'::vector)",
    "hstore": "SELECT ('a=>1, b=>2'::hstore) -> 'a', akeys('a=>1, b=>2'::hstore), 'a=>1'::hstore ? 'a'",
    "ltree": "SELECT 'shop.kitchen.kettle'::ltree <@ 'shop'::ltree, nlevel('a.b.c'::ltree), subpath('a.b.c', 1)",
    "earthdistance": "SELECT round(earth_distance(ll_to_earth(52.52, 13.40), ll_to_earth(48.86, 2.35))::numeric)",
    "unaccent": "SELECT unaccent('Hôtel crème brûlée')",
    "citext": "SELECT 'Customer1@Example.com'::citext = 'customer1@example.com'::citext",
    "system-rows": "SELECT count(*) FROM shop.orders TABLESAMPLE SYSTEM_ROWS (10)",
}
