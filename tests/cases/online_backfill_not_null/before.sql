CREATE TABLE orders (id bigint PRIMARY KEY, quantity integer NOT NULL, unit_price numeric(10,2) NOT NULL);
INSERT INTO orders VALUES (1, 2, 9.99), (2, 1, 100.00);
