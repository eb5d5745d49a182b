-- V1: extensions the schema relies on.
-- postgis: geometry columns + GIST; pgcrypto: gen_random_uuid(); uuid-ossp: legacy
-- uuid_generate_v4() used by old import scripts; pg_trgm: fuzzy name search.
CREATE EXTENSION IF NOT EXISTS postgis;
CREATE EXTENSION IF NOT EXISTS pgcrypto;
CREATE EXTENSION IF NOT EXISTS "uuid-ossp";
CREATE EXTENSION IF NOT EXISTS pg_trgm;
