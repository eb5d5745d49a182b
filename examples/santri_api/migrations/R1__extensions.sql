-- R1: undo V1. RESTRICT (the default): refuses to drop an extension another object
-- still uses, so running it before R2..Rn fails loudly instead of cascading.
DROP EXTENSION IF EXISTS pg_trgm;
DROP EXTENSION IF EXISTS "uuid-ossp";
DROP EXTENSION IF EXISTS pgcrypto;
DROP EXTENSION IF EXISTS postgis;
