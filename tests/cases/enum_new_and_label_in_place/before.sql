CREATE TYPE message_role AS ENUM ('user', 'assistant');
CREATE TABLE messages (id uuid PRIMARY KEY, role message_role NOT NULL DEFAULT 'user');
INSERT INTO messages VALUES ('00000000-0000-0000-0000-000000000001', 'assistant');
