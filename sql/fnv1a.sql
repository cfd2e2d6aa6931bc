-- FNV-1a (32 bits): the published test vectors
SELECT to_hex(capaccess_fnv1a(''::bytea)) AS empty,
       to_hex(capaccess_fnv1a('a'::bytea)) AS a,
       to_hex(capaccess_fnv1a('foobar'::bytea)) AS foobar;

SELECT capaccess_fnv1a(''::bytea) = x'811c9dc5'::bigint AS empty_ok,
       capaccess_fnv1a('a'::bytea) = x'e40c292c'::bigint AS a_ok,
       capaccess_fnv1a('foobar'::bytea) = x'bf9cf968'::bigint AS foobar_ok;

-- the result is always a non-negative bigint below 2^32
SELECT min(h) >= 0 AS non_negative, max(h) < 4294967296 AS below_2_32
  FROM (SELECT capaccess_fnv1a(sha256(i::text::bytea)) AS h
          FROM generate_series(1, 2000) i) s;

-- Avalanche: flipping any one input bit changes about half of the 32 output
-- bits, on average over many inputs and every bit position.
WITH inputs AS (
	SELECT sha256(i::text::bytea) AS b FROM generate_series(1, 300) i
), flips AS (
	SELECT bit_count(int8send(capaccess_fnv1a(b) #
							  capaccess_fnv1a(set_bit(b, k, 1 - get_bit(b, k))))) AS changed
	  FROM inputs, generate_series(0, 255) k
)
SELECT round(avg(changed) / 32, 2) AS fraction_changed,
       avg(changed) BETWEEN 14 AND 18 AS about_half,
       min(changed) > 0 AS always_changes
  FROM flips;

-- The state hash is FNV-1a over the documented canonical encoding.
SELECT capaccess.state_hash(c, k, u, p, a) =
       capaccess_fnv1a(int8send(c) || int8send(k) || int8send(u) || int8send(p) ||
                       int4send(octet_length(convert_to(a, 'UTF8'))) ||
                       convert_to(a, 'UTF8')) AS matches_encoding
  FROM (VALUES (1::bigint, 0::bigint, 0::bigint, 10::bigint, 'none'),
               (-5, 7, 3, 3, ''),
               (9223372036854775807, 1, 2, 3, 'gold ✓'),
               (-9223372036854775808, 42, 0, 0, repeat('x', 200))) v(c, k, u, p, a);

-- Every field is in the hash: changing any one changes it.
SELECT count(DISTINCT h) AS distinct_hashes
  FROM (VALUES (capaccess.state_hash(1, 1, 1, 1, 'a')),
               (capaccess.state_hash(2, 1, 1, 1, 'a')),
               (capaccess.state_hash(1, 2, 1, 1, 'a')),
               (capaccess.state_hash(1, 1, 2, 1, 'a')),
               (capaccess.state_hash(1, 1, 1, 2, 'a')),
               (capaccess.state_hash(1, 1, 1, 1, 'b'))) v(h);
