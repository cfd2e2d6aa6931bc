/*-------------------------------------------------------------------------
 *
 * json_api.c
 *	  capaccess_update(query jsonb, data jsonb) returns jsonb.
 *
 * The contract of the data layer capaccess replaces:
 *
 *	query	{"customer_id": N}
 *	data	{"consume": N, "cap": N, "access": "..."}, each key optional; a key
 *			that is absent (or, for cap and access, null) changes nothing,
 *			but data must name at least one of them
 *
 * and the answer is an object with the keys updated, reason, used, cap,
 * access, clock, seq and state_hash, the same values as the row form.
 *
 * The 64-bit values (customer_id, consume, cap) may be JSON numbers or
 * strings of decimal digits, so that a client whose JSON numbers are
 * doubles (JavaScript's) can pass any bigint exactly.  The answer's are
 * JSON numbers, exact in jsonb and in most JSON parsers, but rounded above
 * 2^53 by JavaScript's JSON.parse: such clients read the row form, whose
 * columns are text on the wire (clients/node does).
 *
 * Data that names none of the keys is refused: it is what JavaScript's
 * JSON.stringify makes of {consume: undefined}, and would be accepted as a
 * change of nothing that still advances the clock.  {"consume": 0} does
 * that on purpose.
 *
 * Unknown keys, values of the wrong JSON type, and numbers that are not
 * whole or out of the bigint range are errors (22023) that name the key.  An argument larger than CAPACCESS_JSONB_MAX bytes is
 * refused (54000) before it is detoasted, and an access text longer than
 * CAPACCESS_ACCESS_MAX bytes (22001) before it is copied.
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "access/detoast.h"
#include "common/int.h"
#include "fmgr.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#include "capaccess.h"

PG_FUNCTION_INFO_V1(capaccess_update_jsonb);

typedef struct JsonArgs
{
	bool		has_customer;
	bool		names_change;	/* data named consume, cap or access */
	int64		customer_id;
	int64		consume;
	bool		has_cap;
	int64		cap;
	char	   *access;
} JsonArgs;

static void
bad_key(const char *argname, const char *key, const char *what)
{
	ereport(ERROR,
			(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
			 errmsg("invalid key \"%s\" in capaccess_update %s: %s",
					key, argname, what)));
}

/* A string of decimal digits, with an optional minus sign, as int64. */
static int64
string_int8(const char *argname, const char *key, const char *str, int len)
{
	bool		negative = (len > 0 && str[0] == '-');
	int			i = negative ? 1 : 0;
	int64		result = 0;

	if (i == len)
		bad_key(argname, key, "expected a whole number or a string of decimal digits");
	for (; i < len; i++)
	{
		int			digit = str[i] - '0';

		if (str[i] < '0' || str[i] > '9')
			bad_key(argname, key, "expected a whole number or a string of decimal digits");
		/* accumulate towards the sign, so that the minimum fits too */
		if (pg_mul_s64_overflow(result, 10, &result) ||
			pg_add_s64_overflow(result, negative ? -digit : digit, &result))
			bad_key(argname, key, "out of the range of bigint");
	}
	return result;
}

/*
 * A whole JSON number, or a string of decimal digits, as int64; errors
 * (22023) name the key.
 */
static int64
json_int8(const char *argname, const char *key, JsonbValue *v)
{
	Numeric		num;
	Datum		i;

	if (v->type == jbvString)
		return string_int8(argname, key, v->val.string.val, v->val.string.len);
	if (v->type != jbvNumeric)
		bad_key(argname, key, "expected a number or a string of decimal digits");
	num = v->val.numeric;
	if (numeric_is_nan(num) || numeric_is_inf(num))
		bad_key(argname, key, "expected a whole number");
	if (DatumGetBool(DirectFunctionCall2(numeric_lt, NumericGetDatum(num),
										 NumericGetDatum(int64_to_numeric(PG_INT64_MIN)))) ||
		DatumGetBool(DirectFunctionCall2(numeric_gt, NumericGetDatum(num),
										 NumericGetDatum(int64_to_numeric(PG_INT64_MAX)))))
		bad_key(argname, key, "out of the range of bigint");
	i = DirectFunctionCall1(numeric_int8, NumericGetDatum(num));
	if (!DatumGetBool(DirectFunctionCall2(numeric_eq, NumericGetDatum(num),
										  NumericGetDatum(int64_to_numeric(DatumGetInt64(i))))))
		bad_key(argname, key, "expected a whole number");
	return DatumGetInt64(i);
}

/* Walk the top-level keys of an object, calling take() for each. */
static void
walk_object(Jsonb *jb, const char *argname, JsonArgs *a,
			void (*take) (const char *, char *, JsonbValue *, JsonArgs *))
{
	JsonbIterator *it;
	JsonbIteratorToken tok;
	JsonbValue	v;
	char	   *key = NULL;

	if (!JB_ROOT_IS_OBJECT(jb) || JB_ROOT_IS_SCALAR(jb))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("capaccess_update %s must be a JSON object", argname)));

	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
	{
		if (tok == WJB_KEY)
			key = pnstrdup(v.val.string.val, v.val.string.len);
		else if (tok == WJB_VALUE)
		{
			/* an object's iterator yields each value right after its key */
			if (key == NULL)
				elog(ERROR, "jsonb object value without a key");
			take(argname, key, &v, a);
		}
	}
}

static void
take_query(const char *argname, char *key, JsonbValue *v, JsonArgs *a)
{
	if (strcmp(key, "customer_id") != 0)
		bad_key(argname, key, "the only key allowed is \"customer_id\"");
	if (v->type == jbvNull)
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("customer_id must not be null")));
	a->customer_id = json_int8(argname, key, v);
	a->has_customer = true;
}

static void
take_data(const char *argname, char *key, JsonbValue *v, JsonArgs *a)
{
	a->names_change = true;
	if (strcmp(key, "consume") == 0)
	{
		if (v->type == jbvNull)
			ereport(ERROR,
					(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
					 errmsg("consume must not be null")));
		a->consume = json_int8(argname, key, v);
	}
	else if (strcmp(key, "cap") == 0)
	{
		if (v->type == jbvNull)
			return;
		a->cap = json_int8(argname, key, v);
		a->has_cap = true;
		if (a->cap < 0)
			bad_key(argname, key, "the cap must not be negative");
	}
	else if (strcmp(key, "access") == 0)
	{
		if (v->type == jbvNull)
			return;
		if (v->type != jbvString)
			bad_key(argname, key, "expected a string");
		capaccess_check_access_length(v->val.string.len);
		a->access = pnstrdup(v->val.string.val, v->val.string.len);
	}
	else
		bad_key(argname, key, "allowed keys are \"consume\", \"cap\" and \"access\"");
}

static void
push_key(JsonbParseState **st, const char *key)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	pushJsonbValue(st, WJB_KEY, &k);
}

static void
push_int8(JsonbParseState **st, const char *key, bool isnull, int64 value)
{
	JsonbValue	v;

	push_key(st, key);
	if (isnull)
		v.type = jbvNull;
	else
	{
		v.type = jbvNumeric;
		v.val.numeric = int64_to_numeric(value);
	}
	pushJsonbValue(st, WJB_VALUE, &v);
}

static void
push_text(JsonbParseState **st, const char *key, const char *value)
{
	JsonbValue	v;

	push_key(st, key);
	if (value == NULL)
		v.type = jbvNull;
	else
	{
		v.type = jbvString;
		v.val.string.val = (char *) value;
		v.val.string.len = strlen(value);
	}
	pushJsonbValue(st, WJB_VALUE, &v);
}

Datum
capaccess_update_jsonb(PG_FUNCTION_ARGS)
{
	JsonArgs	a = {0};
	CapaccessResult r;
	JsonbParseState *st = NULL;
	JsonbValue	v;
	JsonbValue *res;

	capaccess_check_loaded();
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("capaccess_update query and data must not be null"),
				 errhint("Pass '{\"consume\": 0}' as data to change nothing but the clock.")));

	for (int i = 0; i < 2; i++)
	{
		/* before detoasting it: the size is in the header */
		Size		size = toast_raw_datum_size(PG_GETARG_DATUM(i));

		if (size > CAPACCESS_JSONB_MAX)
			ereport(ERROR,
					(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
					 errmsg("capaccess_update %s is too large", i == 0 ? "query" : "data"),
					 errdetail("It is %zu bytes; at most %d bytes are accepted.",
							   size, CAPACCESS_JSONB_MAX)));
	}

	walk_object(PG_GETARG_JSONB_P(0), "query", &a, take_query);
	if (!a.has_customer)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("capaccess_update query must contain the key \"customer_id\"")));
	walk_object(PG_GETARG_JSONB_P(1), "data", &a, take_data);
	if (!a.names_change)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("capaccess_update data names nothing to change"),
				 errdetail("An empty object is what JSON.stringify makes of {consume: undefined}."),
				 errhint("Pass {\"consume\": 0} to change nothing but the clock.")));

	capaccess_do_update(a.customer_id, a.consume, a.has_cap, a.cap, a.access, &r);

	pushJsonbValue(&st, WJB_BEGIN_OBJECT, NULL);
	push_key(&st, "updated");
	v.type = jbvBool;
	v.val.boolean = r.updated;
	pushJsonbValue(&st, WJB_VALUE, &v);
	push_text(&st, "reason", r.reason);
	push_int8(&st, "used", !r.found, r.used);
	push_int8(&st, "cap", !r.found, r.cap);
	push_text(&st, "access", r.found ? r.access : NULL);
	push_int8(&st, "clock", !r.found, r.clock);
	push_int8(&st, "seq", !r.found || r.seq_isnull, r.seq);
	push_int8(&st, "state_hash", !r.found, r.state_hash);
	res = pushJsonbValue(&st, WJB_END_OBJECT, NULL);

	PG_RETURN_JSONB_P(JsonbValueToJsonb(res));
}
