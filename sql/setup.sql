-- Installing the extension: its objects, and that the API is reachable
-- with the default search_path.
CREATE EXTENSION capaccess;

SHOW search_path;

SELECT p.oid::regprocedure AS function, p.provolatile, p.proparallel
  FROM pg_proc p JOIN pg_depend d ON d.objid = p.oid
 WHERE d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'capaccess')
   AND d.deptype = 'e'
 ORDER BY p.oid::regprocedure::text;

\d capaccess.customer

-- the settings are reserved under capaccess.*
SHOW capaccess.max_customers;
SET capaccess.no_such_setting = 1;
SELECT :'LAST_ERROR_SQLSTATE' AS sqlstate;

-- a fresh server: nothing held, nothing cached
SELECT slots, slots_loaded, slots_held FROM capaccess_stats();
