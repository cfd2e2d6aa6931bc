/*-------------------------------------------------------------------------
 *
 * fnv1a.c
 *	  FNV-1a (32 bits) and the canonical encoding of a customer's state.
 *
 * The state hash is a fingerprint: it catches accidental divergence (a row
 * edited by hand, a bug, a torn copy), not an adversary, who can find FNV
 * collisions at will.
 *
 * Canonical encoding, so that any client can recompute the hash:
 *
 *	customer_id, clock, used, cap	each 8 bytes, big-endian two's complement
 *	length of access				4 bytes, big-endian, in bytes of UTF-8
 *	access							its UTF-8 bytes
 *
 * which in SQL is
 *
 *	int8send(customer_id) || int8send(clock) || int8send(used) ||
 *	int8send(cap) || int4send(octet_length(convert_to(access, 'UTF8'))) ||
 *	convert_to(access, 'UTF8')
 *
 * The hash is returned as a bigint between 0 and 2^32 - 1.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"

#include "capaccess.h"

#define FNV1A_OFFSET_BASIS	((uint32) 0x811c9dc5)
#define FNV1A_PRIME			((uint32) 0x01000193)

PG_FUNCTION_INFO_V1(capaccess_fnv1a_sql);
PG_FUNCTION_INFO_V1(capaccess_state_hash_sql);

uint32
capaccess_fnv1a(uint32 hash, const unsigned char *data, size_t len)
{
	for (size_t i = 0; i < len; i++)
	{
		hash ^= data[i];
		hash *= FNV1A_PRIME;
	}
	return hash;
}

static uint32
fnv1a_be64(uint32 hash, int64 value)
{
	unsigned char buf[8];
	uint64		v = (uint64) value;

	for (int i = 7; i >= 0; i--)
	{
		buf[i] = (unsigned char) (v & 0xFF);
		v >>= 8;
	}
	return capaccess_fnv1a(hash, buf, sizeof(buf));
}

/*
 * Hash of a state.  access is in the server encoding, access_len bytes long.
 */
int64
capaccess_state_hash_of(int64 customer_id, int64 clock, int64 used,
						int64 cap, const char *access, int access_len)
{
	uint32		hash = FNV1A_OFFSET_BASIS;
	const char *utf8;
	unsigned char lenbuf[4];
	uint32		n;

	utf8 = pg_server_to_any(access, access_len, PG_UTF8);
	/* the input itself comes back, unterminated, when no conversion is due */
	n = (utf8 == access) ? (uint32) access_len : (uint32) strlen(utf8);

	hash = fnv1a_be64(hash, customer_id);
	hash = fnv1a_be64(hash, clock);
	hash = fnv1a_be64(hash, used);
	hash = fnv1a_be64(hash, cap);
	lenbuf[0] = (unsigned char) (n >> 24);
	lenbuf[1] = (unsigned char) (n >> 16);
	lenbuf[2] = (unsigned char) (n >> 8);
	lenbuf[3] = (unsigned char) n;
	hash = capaccess_fnv1a(hash, lenbuf, sizeof(lenbuf));
	hash = capaccess_fnv1a(hash, (const unsigned char *) utf8, n);

	if (utf8 != access)
		pfree((char *) utf8);
	return (int64) hash;
}

/* capaccess_fnv1a(bytea) returns bigint */
Datum
capaccess_fnv1a_sql(PG_FUNCTION_ARGS)
{
	bytea	   *data = PG_GETARG_BYTEA_PP(0);
	uint32		hash;

	hash = capaccess_fnv1a(FNV1A_OFFSET_BASIS,
						   (const unsigned char *) VARDATA_ANY(data),
						   VARSIZE_ANY_EXHDR(data));
	PG_RETURN_INT64((int64) hash);
}

/* capaccess.state_hash(customer_id, clock, used, cap, access) */
Datum
capaccess_state_hash_sql(PG_FUNCTION_ARGS)
{
	text	   *access = PG_GETARG_TEXT_PP(4);

	PG_RETURN_INT64(capaccess_state_hash_of(PG_GETARG_INT64(0),
											PG_GETARG_INT64(1),
											PG_GETARG_INT64(2),
											PG_GETARG_INT64(3),
											VARDATA_ANY(access),
											VARSIZE_ANY_EXHDR(access)));
}
