-- The pg_regress suite once more, on an install updated from 1.0 (make
-- check-regress-updated): this replaces setup, creating the extension at
-- 1.0 from its script as released and updating it, and every other test
-- must read as it does on a fresh install of 1.1.
CREATE EXTENSION capaccess VERSION '1.0';
SELECT extversion FROM pg_extension WHERE extname = 'capaccess';
ALTER EXTENSION capaccess UPDATE;
SELECT extversion FROM pg_extension WHERE extname = 'capaccess';
-- a fresh server: nothing held, nothing cached
SELECT slots, slots_loaded, slots_held FROM capaccess_stats();
