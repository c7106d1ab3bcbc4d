-- The target schema of the demo (PostgreSQL types; SQLite accepts them as written).
-- NUMBER(10) keys are bigint: ten digits do not fit a 32-bit integer (pt preflight checks).
CREATE TABLE IF NOT EXISTS customers (
    customer_id  bigint        PRIMARY KEY,
    name         varchar(100)  NOT NULL,
    email        varchar(200),
    phone        varchar(30),
    created_on   date          NOT NULL,
    referred_by  bigint        REFERENCES customers (customer_id)
);
CREATE TABLE IF NOT EXISTS products (
    product_id   bigint        PRIMARY KEY,
    sku          varchar(20)   NOT NULL,
    name         varchar(100)  NOT NULL,
    price        numeric(10,2) NOT NULL,
    active       boolean       NOT NULL
);
CREATE TABLE IF NOT EXISTS orders (
    order_id     bigint        PRIMARY KEY,
    customer_id  bigint        NOT NULL REFERENCES customers (customer_id),
    order_date   date          NOT NULL,
    status       varchar(12)   NOT NULL,
    total        numeric(12,2) NOT NULL
);
CREATE TABLE IF NOT EXISTS order_items (
    order_id     bigint        NOT NULL REFERENCES orders (order_id),
    line_no      smallint      NOT NULL,
    product_id   bigint        NOT NULL REFERENCES products (product_id),
    quantity     integer       NOT NULL,
    unit_price   numeric(10,2) NOT NULL,
    amount       numeric(14,2) NOT NULL,
    PRIMARY KEY (order_id, line_no)
);
