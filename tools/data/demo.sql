-- Demo data for the read-only SQL tool: a small online shop (Northwind-style, invented).
-- Rebuild tools/data/demo.db from this file with `make demo-db`.
CREATE TABLE products (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    category TEXT NOT NULL,
    price_usd REAL NOT NULL,
    stock INTEGER NOT NULL
);
CREATE TABLE customers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    city TEXT NOT NULL,
    country TEXT NOT NULL,
    joined_on TEXT NOT NULL
);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY,
    customer_id INTEGER NOT NULL REFERENCES customers(id),
    product_id INTEGER NOT NULL REFERENCES products(id),
    quantity INTEGER NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'shipped', 'delivered', 'cancelled')),
    ordered_on TEXT NOT NULL
);
CREATE TABLE employees (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL,
    team TEXT NOT NULL,
    title TEXT NOT NULL,
    office TEXT NOT NULL,
    timezone TEXT NOT NULL,
    email TEXT NOT NULL
);

INSERT INTO products VALUES
 (1, 'Trail Runner 2 shoes', 'footwear', 129.00, 42),
 (2, 'Summit 40L backpack', 'bags', 149.50, 17),
 (3, 'Featherlight rain jacket', 'apparel', 189.99, 8),
 (4, 'Basecamp 2-person tent', 'camping', 349.00, 5),
 (5, 'Insulated bottle 750ml', 'accessories', 34.95, 120),
 (6, 'Merino base layer', 'apparel', 89.00, 33),
 (7, 'Headlamp 400 lumen', 'accessories', 45.00, 61),
 (8, 'Down sleeping bag -5C', 'camping', 279.00, 11),
 (9, 'Trekking poles (pair)', 'accessories', 99.00, 26),
 (10, 'Approach shoes', 'footwear', 159.00, 0);

INSERT INTO customers VALUES
 (1, 'Ana Souza', 'Lisbon', 'Portugal', '2023-02-11'),
 (2, 'Kenji Watanabe', 'Osaka', 'Japan', '2022-11-30'),
 (3, 'Maya Patel', 'Toronto', 'Canada', '2024-01-05'),
 (4, 'Lars Nilsson', 'Stockholm', 'Sweden', '2021-07-19'),
 (5, 'Chloé Martin', 'Lyon', 'France', '2023-09-02'),
 (6, 'Diego Ramírez', 'Mexico City', 'Mexico', '2024-03-23'),
 (7, 'Amara Okafor', 'Lagos', 'Nigeria', '2022-05-14'),
 (8, 'Sam Taylor', 'Denver', 'United States', '2020-10-08');

INSERT INTO orders VALUES
 (1001, 1, 1, 1, 'delivered', '2026-10-02'),
 (1002, 2, 4, 1, 'shipped', '2026-11-14'),
 (1003, 3, 5, 3, 'pending', '2026-11-20'),
 (1004, 4, 8, 1, 'delivered', '2026-09-28'),
 (1005, 5, 3, 1, 'cancelled', '2026-10-17'),
 (1006, 6, 2, 1, 'pending', '2026-11-22'),
 (1007, 7, 7, 2, 'shipped', '2026-11-18'),
 (1008, 8, 9, 1, 'delivered', '2026-08-30'),
 (1009, 1, 6, 2, 'pending', '2026-11-23'),
 (1010, 2, 5, 4, 'delivered', '2026-07-11'),
 (1011, 3, 1, 1, 'shipped', '2026-11-19'),
 (1012, 8, 4, 1, 'pending', '2026-11-24');

INSERT INTO employees VALUES
 (1, 'Priya Raman', 'Support', 'Support lead', 'Toronto', 'America/Toronto', 'priya.raman@example.com'),
 (2, 'Tom Becker', 'Logistics', 'Warehouse manager', 'Berlin', 'Europe/Berlin', 'tom.becker@example.com'),
 (3, 'Yuki Sato', 'Support', 'Support engineer', 'Tokyo', 'Asia/Tokyo', 'yuki.sato@example.com'),
 (4, 'Grace Kim', 'Engineering', 'Staff engineer', 'San Francisco', 'America/Los_Angeles', 'grace.kim@example.com'),
 (5, 'Omar Haddad', 'Finance', 'Controller', 'London', 'Europe/London', 'omar.haddad@example.com'),
 (6, 'Lucía Fernández', 'Sales', 'Account executive', 'Madrid', 'Europe/Madrid', 'lucia.fernandez@example.com');
