-- The demo shop schema: realistic enough for schema discovery, joins, analytics and backup round
-- trips (numeric, timestamptz, jsonb, arrays, NULLs, large text). Objects are created as app_owner so
-- that the default privileges of 10-roles.sh give the MCP reader SELECT on every table and view.
SET ROLE app_owner;
SET search_path = shop;

CREATE TABLE customers (
    customer_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email        text NOT NULL UNIQUE CHECK (position('@' IN email) > 1),
    full_name    text NOT NULL,
    country      char(2) NOT NULL,
    tags         text[] NOT NULL DEFAULT '{}',
    preferences  jsonb,
    created_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE customers IS 'People who have an account in the shop';
COMMENT ON COLUMN customers.email IS 'Login and contact address, unique';
COMMENT ON COLUMN customers.country IS 'ISO 3166-1 alpha-2 country code';
COMMENT ON COLUMN customers.tags IS 'Marketing segments the customer belongs to';
COMMENT ON COLUMN customers.preferences IS 'Free-form settings (newsletter, language); NULL when never set';
CREATE INDEX customers_country_idx ON customers (country);

CREATE TABLE products (
    product_id   bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sku          text NOT NULL UNIQUE,
    name         text NOT NULL,
    category     text NOT NULL,
    price        numeric(10, 2) NOT NULL CHECK (price >= 0),
    description  text,
    attributes   jsonb NOT NULL DEFAULT '{}',
    active       boolean NOT NULL DEFAULT true
);
COMMENT ON TABLE products IS 'Catalogue of things for sale';
COMMENT ON COLUMN products.sku IS 'Stock keeping unit, the merchant''s own product code';
COMMENT ON COLUMN products.price IS 'Current unit price in EUR';
COMMENT ON COLUMN products.description IS 'Long marketing text; may be large';
CREATE INDEX products_category_idx ON products (category);

CREATE TABLE orders (
    order_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    customer_id  bigint NOT NULL REFERENCES customers (customer_id),
    status       text NOT NULL CHECK (status IN ('pending', 'paid', 'shipped', 'delivered', 'cancelled')),
    placed_at    timestamptz NOT NULL,
    shipped_at   timestamptz,
    total        numeric(12, 2) NOT NULL DEFAULT 0,
    note         text
);
COMMENT ON TABLE orders IS 'One checkout by a customer';
COMMENT ON COLUMN orders.status IS 'Lifecycle: pending, paid, shipped, delivered or cancelled';
COMMENT ON COLUMN orders.shipped_at IS 'NULL until the order ships';
COMMENT ON COLUMN orders.total IS 'Sum of the line items in EUR, kept in step by the loader';
CREATE INDEX orders_customer_idx ON orders (customer_id);
CREATE INDEX orders_placed_at_idx ON orders (placed_at);

CREATE TABLE order_items (
    order_id     bigint NOT NULL REFERENCES orders (order_id) ON DELETE CASCADE,
    line_no      smallint NOT NULL,
    product_id   bigint NOT NULL REFERENCES products (product_id),
    quantity     integer NOT NULL CHECK (quantity > 0),
    unit_price   numeric(10, 2) NOT NULL,
    PRIMARY KEY (order_id, line_no)
);
COMMENT ON TABLE order_items IS 'Line items of an order: which product, how many, at what price';
CREATE INDEX order_items_product_idx ON order_items (product_id);

CREATE VIEW order_summary AS
SELECT o.order_id, c.email, o.status, o.placed_at, o.total, count(i.line_no) AS items
FROM orders o
JOIN customers c USING (customer_id)
LEFT JOIN order_items i USING (order_id)
GROUP BY o.order_id, c.email;
COMMENT ON VIEW order_summary IS 'Orders with the customer''s e-mail and their number of line items';

RESET ROLE;
