#!/usr/bin/env bash
# Fill the demo shop with deterministic data. Size is a parameter:
#   DEMO_ORDERS   number of orders (default 10000; 1000000 for load and backup benchmarks, about
#                 2.5 line items each). Customers are one tenth of the orders (at least 100),
#                 products a fixed 500. 0 leaves the tables empty.
# Reads POSTGRES_USER and POSTGRES_DB like every init script.
set -Eeuo pipefail

data_main() {
	local orders="${DEMO_ORDERS:-10000}"
	if [[ ! "$orders" =~ ^[0-9]+$ ]]; then
		printf '%s: DEMO_ORDERS=%s is not a whole number: use for example 10000 or 1000000\n' "$0" "$orders" >&2
		exit 1
	fi
	printf '%s: loading the demo shop with %s orders\n' "$0" "$orders"
	psql -v ON_ERROR_STOP=1 --no-psqlrc --no-password --quiet \
		--username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
		--set=orders="$orders" <<-'SQL'
		SET ROLE app_owner;
		SET search_path = shop;
		-- Same seed, same data: tests and the restore drill compare exact values.
		SELECT setseed(0.42);

		INSERT INTO products (sku, name, category, price, description, attributes, active)
		SELECT format('SKU-%s', lpad(n::text, 5, '0')),
		       format('%s %s', (ARRAY['Classic', 'Eco', 'Pro', 'Mini', 'Max'])[1 + n % 5],
		                       (ARRAY['Kettle', 'Lamp', 'Chair', 'Backpack', 'Headphones', 'Mug', 'Desk'])[1 + n % 7]),
		       (ARRAY['kitchen', 'lighting', 'furniture', 'travel', 'audio'])[1 + n % 5],
		       round((5 + random() * 495)::numeric, 2),
		       CASE WHEN n % 50 = 0 THEN repeat('Long description with unicode (é, ß, 漢字). ', 2000)
		            WHEN n % 7 = 0 THEN NULL
		            ELSE format('A reliable %s for everyday use.', lower((ARRAY['Kettle', 'Lamp', 'Chair', 'Backpack', 'Headphones', 'Mug', 'Desk'])[1 + n % 7]))
		       END,
		       jsonb_build_object('weight_g', 100 + n % 900, 'colors', jsonb_build_array('black', 'white')),
		       n % 13 <> 0
		FROM generate_series(1, 500) AS n;

		INSERT INTO customers (email, full_name, country, tags, preferences, created_at)
		SELECT format('customer%s@example.com', n),
		       format('Customer %s', n),
		       (ARRAY['DE', 'FR', 'US', 'GB', 'JP', 'BR', 'IN', 'NL'])[1 + n % 8],
		       CASE WHEN n % 3 = 0 THEN ARRAY['newsletter', 'vip'] WHEN n % 3 = 1 THEN ARRAY['newsletter'] ELSE '{}' END,
		       CASE WHEN n % 4 = 0 THEN NULL ELSE jsonb_build_object('lang', (ARRAY['en', 'de', 'fr'])[1 + n % 3], 'newsletter', n % 2 = 0) END,
		       timestamptz '2024-01-01 00:00:00+00' + n * interval '17 minutes'
		FROM generate_series(1, greatest(100, :orders / 10)) AS n;

		-- Line items first (1 to 4 per order), so each order's total is right from the start.
		CREATE TEMP TABLE demo_items AS
		SELECT o AS order_id, l::smallint AS line_no,
		       1 + floor(random() * 500)::bigint AS product_id,
		       1 + floor(random() * 5)::integer AS quantity
		FROM generate_series(1, :orders) AS o,
		     LATERAL generate_series(1, 1 + (o * 7) % 4) AS l;

		INSERT INTO orders (order_id, customer_id, status, placed_at, shipped_at, total, note)
		OVERRIDING SYSTEM VALUE
		SELECT o,
		       1 + (o::bigint * 7919) % greatest(100, :orders / 10),
		       (ARRAY['pending', 'paid', 'shipped', 'delivered', 'cancelled'])[1 + o % 5],
		       timestamptz '2024-01-01 00:00:00+00' + o * interval '3 minutes',
		       CASE WHEN o % 5 IN (2, 3) THEN timestamptz '2024-01-02 00:00:00+00' + o * interval '3 minutes' END,
		       coalesce(t.total, 0),
		       CASE WHEN o % 11 = 0 THEN 'Please leave at the door' END
		FROM generate_series(1, :orders) AS o
		LEFT JOIN (SELECT d.order_id, sum(d.quantity * p.price) AS total
		           FROM demo_items d JOIN products p USING (product_id)
		           GROUP BY d.order_id) t ON t.order_id = o;
		SELECT setval(pg_get_serial_sequence('shop.orders', 'order_id'), greatest(:orders, 1));

		INSERT INTO order_items (order_id, line_no, product_id, quantity, unit_price)
		SELECT d.order_id, d.line_no, d.product_id, d.quantity, p.price
		FROM demo_items d JOIN products p USING (product_id)
		ORDER BY d.order_id, d.line_no;
		DROP TABLE demo_items;
		RESET ROLE;
		ANALYZE;
	SQL
}

data_main "$@"
