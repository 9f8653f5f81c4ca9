CREATE TABLE tools (id integer PRIMARY KEY, name varchar(128), description varchar(500),
                    price numeric(8,2), code varchar(16), tenant_id integer);
INSERT INTO tools VALUES (1, 'search', 'web search', 9.99, 'SRCH', 1);
