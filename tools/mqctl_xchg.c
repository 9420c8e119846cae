/* SPDX-License-Identifier: MIT */
/*
 * mqctl_xchg.c - exchanges and bindings: exchange create, exchange delete,
 * bind and unbind (they change the segment: a full attachment, as the
 * library requires), exchanges and bindings (observers, changing nothing).
 * publish is beside send in mqctl_ops.c, whose message feeding it shares.
 *
 * Errors name the exchange ("exchange 'X'") and, for a binding, the queue;
 * an -ENOENT says which of the two is missing, and that a name given as an
 * exchange is a queue's (queues and exchanges share one namespace).
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "mqctl.h"

/* ---- shared helpers ------------------------------------------------------------ */

const char *key_text(const char *key, size_t n, char *buf, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *b = (const unsigned char *)key;
	size_t i, o = 0;

	if (len < KEY_TEXT_MAX) {
		snprintf(buf, len, "?");
		return buf;
	}
	if (!n) {
		snprintf(buf, len, "\"\"");
		return buf;
	}
	/* As print_escaped(): printable ASCII as is, the rest escaped. */
	for (i = 0; i < n && i < SHMQ_KEY_MAX; i++) {
		if (b[i] == '\\') {
			buf[o++] = '\\';
			buf[o++] = '\\';
		} else if (b[i] == '\n') {
			buf[o++] = '\\';
			buf[o++] = 'n';
		} else if (b[i] == '\t') {
			buf[o++] = '\\';
			buf[o++] = 't';
		} else if (b[i] < 0x20 || b[i] >= 0x7f) {
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[b[i] >> 4];
			buf[o++] = hex[b[i] & 15];
		} else {
			buf[o++] = (char)b[i];
		}
	}
	buf[o] = 0;
	return buf;
}

/* Is there a live queue named @name?  (Observer or attachment.) */
static int is_queue(shmq_seg *seg, const char *name)
{
	struct shmq_queue_info q;

	return shmq_queue_stat(seg, name, &q) == 0;
}

static int is_exchange(shmq_seg *seg, const char *name)
{
	struct shmq_exchange_info x;

	return shmq_exchange_stat(seg, name, &x) == 0;
}

int no_exchange(const struct ctx *c, shmq_seg *seg, const char *name)
{
	return fail_own(c, NULL, -ENOENT, "exchange '%s': no such exchange%s",
			name, is_queue(seg, name) ?
			" (a queue has that name)" : "");
}

/* -ENOENT for queue @name of a binding -> EXIT_FAIL. */
static int no_queue(const struct ctx *c, shmq_seg *seg, const char *name)
{
	return fail_own(c, name, -ENOENT, "queue '%s': no such queue%s", name,
			is_exchange(seg, name) ?
			" (an exchange has that name)" : "");
}

void count_exchanges(shmq_seg *seg, uint32_t *live, uint32_t *unlinked)
{
	struct shmq_exchange_info *x;
	int n, i;

	*live = *unlinked = 0;
	n = shmq_exchange_list(seg, NULL, 0);
	if (n <= 0)
		return;
	x = calloc((size_t)n, sizeof(*x));
	if (!x)
		return;
	n = shmq_exchange_list(seg, x, (unsigned)n);
	for (i = 0; i < n; i++) {
		if (x[i].state == SHMQ_QUEUE_LIVE)
			(*live)++;
		else
			(*unlinked)++;
	}
	free(x);
}

int get_exchanges(const struct ctx *c, shmq_seg *seg,
		  struct shmq_exchange_info **out, int *n)
{
	struct shmq_exchange_info *x = NULL;
	int cnt = 0, rc;

	/* The directory may grow between the count and the fill: retry. */
	for (;;) {
		rc = shmq_exchange_list(seg, x, (unsigned)cnt);
		if (rc < 0) {
			free(x);
			return rc == -EPROTO ?
			       fail(c, NULL, rc, "'mqctl -s %s check' says "
				    "what is wrong", c->seg) :
			       fail(c, NULL, rc, NULL);
		}
		if (rc <= cnt)
			break;
		cnt = rc;
		free(x);
		x = calloc((size_t)cnt, sizeof(*x));
		if (!x)
			return fail(c, NULL, -ENOMEM, NULL);
	}
	*out = x;
	*n = rc;
	return 0;
}

/* ---- exchange create, exchange delete ------------------------------------------ */

static int on_xcreate(struct ctx *c, int code, const char *arg, void *data)
{
	struct shmq_xattr *a = data;

	if (code == OPT_TYPE) {
		if (strcmp(arg, "direct") == 0)
			a->type = SHMQ_DIRECT;
		else if (strcmp(arg, "fanout") == 0)
			a->type = SHMQ_FANOUT;
		else if (strcmp(arg, "topic") == 0)
			a->type = SHMQ_TOPIC;
		else
			return usage(c, "--type '%s': an exchange is direct, "
				     "fanout or topic", arg);
	} else if (code == OPT_ALTERNATE) {
		if (!name_ok(arg))
			return usage(c, "--alternate '%s': a name is 1-63 "
				     "bytes of [A-Za-z0-9._-]", arg);
		a->alternate = arg;
	}
	return 0;
}

int cmd_exchange_create(struct ctx *c, int argc, char **argv)
{
	struct shmq_xattr a = { SHMQ_DIRECT, 0, NULL };
	struct shmq_exchange_info x;
	const char *name;
	shmq_seg *seg;
	int rc;

	rc = parse_opts(c, find_cmd("exchange create"), argc, argv, on_xcreate,
			&a);
	if (rc)
		return rc == PARSED_HELP ? 0 : rc;
	name = c->exchange = c->argv[0];
	if (seg_attach(c, &seg))
		return EXIT_FAIL;
	rc = shmq_exchange_create(seg, name, &a);
	if (rc == -ENOSPC) {
		rc = create_nospace(c, seg, "exchange", name, "blocks");
		shmq_seg_close(seg);
		return rc;
	}
	if (rc == -EEXIST) {
		rc = fail(c, NULL, rc, "%s of that name exists",
			  is_queue(seg, name) ? "a queue" : "an exchange");
		shmq_seg_close(seg);
		return rc;
	}
	if (!rc)
		rc = shmq_exchange_stat(seg, name, &x);
	shmq_seg_close(seg);
	if (rc == -EINVAL && !name_ok(name))
		return fail(c, NULL, rc, "an exchange name is 1-63 bytes of "
			    "[A-Za-z0-9._-]");
	if (rc)
		return fail(c, NULL, rc, NULL);
	if (c->json) {
		printf("{\"segment\":");
		json_str(stdout, c->seg);
		printf(",\"exchange\":");
		json_str(stdout, x.name);
		printf(",\"created\":true,\"type\":\"%s\",\"alternate\":",
		       exchange_type(x.type));
		if (x.alternate[0])
			json_str(stdout, x.alternate);
		else
			printf("null");
		printf("}\n");
		return 0;
	}
	printf("created exchange %s: type %s, alternate %s\n", x.name,
	       exchange_type(x.type), x.alternate[0] ? x.alternate : "none");
	return 0;
}

int cmd_exchange_delete(struct ctx *c, int argc, char **argv)
{
	struct shmq_exchange_info x;
	const char *name;
	shmq_seg *seg;
	int rc;

	rc = parse_opts(c, find_cmd("exchange delete"), argc, argv, NULL,
			NULL);
	if (rc)
		return rc == PARSED_HELP ? 0 : rc;
	name = c->exchange = c->argv[0];
	if (seg_attach(c, &seg))
		return EXIT_FAIL;
	rc = shmq_exchange_stat(seg, name, &x);
	if (!rc)
		rc = shmq_exchange_unlink(seg, name);
	if (rc == -ENOENT)
		rc = no_exchange(c, seg, name);
	else if (rc)
		rc = fail(c, NULL, rc, NULL);
	shmq_seg_close(seg);
	if (rc)
		return rc;
	if (c->json) {
		printf("{\"segment\":");
		json_str(stdout, c->seg);
		printf(",\"exchange\":");
		json_str(stdout, name);
		printf(",\"deleted\":true,\"bindings\":%u,\"handles\":%u}\n",
		       x.bindings, x.handles);
		return 0;
	}
	printf("deleted exchange %s and its %u binding(s)", name, x.bindings);
	if (x.handles)
		printf(" (%u open handle(s) keep its storage until closed; "
		       "publishing through them fails)", x.handles);
	printf("\n");
	return 0;
}

/* ---- exchanges ------------------------------------------------------------------ */

static int on_prom(struct ctx *c, int code, const char *arg, void *data)
{
	(void)c;
	(void)arg;
	if (code == OPT_PROMETHEUS)
		*(int *)data = 1;
	return 0;
}

static const char *xstate(uint32_t state)
{
	return state == SHMQ_QUEUE_LIVE ? "live" : "unlinked";
}

static void json_exchange(const struct shmq_exchange_info *x)
{
	char t[64];

	printf("{\"name\":");
	json_str(stdout, x->name);
	printf(",\"type\":\"%s\",\"state\":\"%s\",\"index\":%u,"
	       "\"bindings\":%u,\"handles\":%u,\"published\":%llu,"
	       "\"routed\":%llu,\"unroutable\":%llu,\"dropped\":%llu,"
	       "\"alternate\":", exchange_type(x->type), xstate(x->state),
	       x->index, x->bindings, x->handles,
	       (unsigned long long)x->published,
	       (unsigned long long)x->routed,
	       (unsigned long long)x->unroutable,
	       (unsigned long long)x->dropped);
	if (x->alternate[0])
		json_str(stdout, x->alternate);
	else
		printf("null");
	printf(",\"created_ns\":%llu,\"created\":",
	       (unsigned long long)x->create_time_ns);
	json_str(stdout, fmt_time(x->create_time_ns, t, sizeof(t)));
	printf("}");
}

/* The text exposition format: HELP, TYPE, one sample per exchange. */
static void xprometheus(const char *segname,
			const struct shmq_exchange_info *x, int n)
{
	static const struct {
		const char *name, *type, *help;
		size_t off;
		int u32;
	} m[] = {
#define M(n, t, h, f, u) \
	{ n, t, h, offsetof(struct shmq_exchange_info, f), u }
		M("shmq_exchange_bindings", "gauge",
		  "Bindings to queues that exist.", bindings, 1),
		M("shmq_exchange_handles", "gauge",
		  "Open handles over all attached processes.", handles, 1),
		M("shmq_exchange_published_total", "counter",
		  "Publishes that succeeded.", published, 0),
		M("shmq_exchange_routed_total", "counter",
		  "Deliveries: queues that got a published message.", routed,
		  0),
		M("shmq_exchange_unroutable_total", "counter",
		  "Publishes that no queue took.", unroutable, 0),
		M("shmq_exchange_dropped_total", "counter",
		  "Deliveries skipped or evicted at full drop-newest or "
		  "drop-oldest queues.", dropped, 0),
#undef M
	};
	unsigned i;
	int k;

	for (i = 0; i < sizeof(m) / sizeof(m[0]); i++) {
		printf("# HELP %s %s\n# TYPE %s %s\n", m[i].name, m[i].help,
		       m[i].name, m[i].type);
		for (k = 0; k < n; k++) {
			const char *base = (const char *)&x[k];
			unsigned long long v = m[i].u32 ?
				*(const uint32_t *)(base + m[i].off) :
				*(const uint64_t *)(base + m[i].off);

			printf("%s{segment=\"", m[i].name);
			prom_label(segname);
			printf("\",exchange=\"");
			prom_label(x[k].name);
			printf("\",type=\"%s\",state=\"%s\"} %llu\n",
			       exchange_type(x[k].type), xstate(x[k].state),
			       v);
		}
	}
}

int cmd_exchanges(struct ctx *c, int argc, char **argv)
{
	struct shmq_exchange_info *x = NULL;
	int prom = 0, n = 0, i, rc;
	shmq_seg *seg;

	rc = parse_opts(c, find_cmd("exchanges"), argc, argv, on_prom, &prom);
	if (rc)
		return rc == PARSED_HELP ? 0 : rc;
	if (seg_observe(c, &seg))
		return EXIT_FAIL;
	rc = get_exchanges(c, seg, &x, &n);
	shmq_seg_close(seg);
	if (rc)
		return rc;
	if (prom) {
		xprometheus(c->seg, x, n);
	} else if (c->json) {
		printf("{\"segment\":");
		json_str(stdout, c->seg);
		printf(",\"exchanges\":[");
		for (i = 0; i < n; i++) {
			if (i)
				putchar(',');
			json_exchange(&x[i]);
		}
		printf("]}\n");
	} else {
		printf("%-20s %-6s %8s %12s %12s %10s %10s %-20s %s\n",
		       "EXCHANGE", "TYPE", "BINDINGS", "PUBLISHED", "ROUTED",
		       "UNROUTABLE", "DROPPED", "ALTERNATE", "STATE");
		for (i = 0; i < n; i++)
			printf("%-20s %-6s %8u %12llu %12llu %10llu %10llu "
			       "%-20s %s\n", x[i].name,
			       exchange_type(x[i].type), x[i].bindings,
			       (unsigned long long)x[i].published,
			       (unsigned long long)x[i].routed,
			       (unsigned long long)x[i].unroutable,
			       (unsigned long long)x[i].dropped,
			       x[i].alternate[0] ? x[i].alternate : "-",
			       xstate(x[i].state));
	}
	free(x);
	return 0;
}

/* ---- bindings --------------------------------------------------------------------- */

int cmd_bindings(struct ctx *c, int argc, char **argv)
{
	struct shmq_binding_info *b = NULL;
	const char *name = NULL;
	char k[KEY_TEXT_MAX];
	int cnt = 0, n, i, rc;
	shmq_seg *seg;

	rc = parse_opts(c, find_cmd("bindings"), argc, argv, NULL, NULL);
	if (rc)
		return rc == PARSED_HELP ? 0 : rc;
	if (c->argc)
		name = c->exchange = c->argv[0];
	if (seg_observe(c, &seg))
		return EXIT_FAIL;
	/* Bindings may be added between the count and the fill: retry. */
	for (;;) {
		n = shmq_binding_list(seg, name, b, (unsigned)cnt);
		if (n < 0 || n <= cnt)
			break;
		cnt = n;
		free(b);
		b = calloc((size_t)cnt, sizeof(*b));
		if (!b) {
			n = -ENOMEM;
			break;
		}
	}
	if (n == -ENOENT && name)
		rc = no_exchange(c, seg, name);
	else if (n == -EPROTO)
		rc = fail(c, NULL, n, "'mqctl -s %s check' says what is "
			  "wrong", c->seg);
	else if (n < 0)
		rc = fail(c, NULL, n, NULL);
	shmq_seg_close(seg);
	if (rc) {
		free(b);
		return rc;
	}
	if (c->json) {
		printf("{\"segment\":");
		json_str(stdout, c->seg);
		printf(",\"exchange\":");
		if (name)
			json_str(stdout, name);
		else
			printf("null");
		printf(",\"bindings\":[");
	} else {
		printf("%-20s %-20s %s\n", "EXCHANGE", "QUEUE", "KEY");
	}
	for (i = 0; i < n; i++) {
		uint32_t kl = b[i].key_len <= SHMQ_KEY_MAX ? b[i].key_len :
			      SHMQ_KEY_MAX;

		if (c->json) {
			printf("%s{\"exchange\":", i ? "," : "");
			json_str(stdout, b[i].exchange);
			printf(",\"queue\":");
			json_str(stdout, b[i].queue);
			printf(",");
			/* "key", or "key_base64" when it is not UTF-8. */
			json_payload(stdout, "key", b[i].key, kl);
			printf("}");
		} else {
			printf("%-20s %-20s %s\n", b[i].exchange, b[i].queue,
			       key_text(b[i].key, kl, k, sizeof(k)));
		}
	}
	if (c->json)
		printf("]}\n");
	free(b);
	return 0;
}

/* ---- bind, unbind ------------------------------------------------------------------ */

/*
 * Why shmq_bind() or shmq_unbind() said @rc -> EXIT_FAIL: which name is
 * missing, an SPSC queue, or (unbind) no such binding.
 */
static int bind_failed(const struct ctx *c, shmq_seg *seg, int rc, int bind,
		       const char *key)
{
	const char *xname = c->argv[0], *qname = c->argv[1];
	struct shmq_queue_info q;
	char k[KEY_TEXT_MAX];

	key_text(key, strlen(key), k, sizeof(k));
	if (rc == -ENOENT && !is_exchange(seg, xname))
		return no_exchange(c, seg, xname);
	if (rc == -ENOENT && shmq_queue_stat(seg, qname, &q))
		return no_queue(c, seg, qname);
	if (rc == -ENOENT && !bind)
		return fail_own(c, qname, rc, "no binding of queue '%s' to "
				"exchange '%s' with key %s%s%s ('mqctl "
				"bindings %s' lists them)", qname, xname,
				*key ? "'" : "", k, *key ? "'" : "", xname);
	if (rc == -EINVAL && !shmq_queue_stat(seg, qname, &q) &&
	    (q.flags & SHMQ_SPSC))
		return fail(c, qname, rc, "an SPSC queue cannot be bound");
	if (rc == -ENOSPC)
		return fail(c, qname, rc, "no segment memory left for a "
			    "larger binding table");
	return fail(c, qname, rc, NULL);
}

static int bind_cmd(struct ctx *c, int argc, char **argv, int bind)
{
	const char *xname, *qname, *key;
	char k[KEY_TEXT_MAX];
	shmq_seg *seg;
	size_t klen;
	int rc;

	rc = parse_opts(c, find_cmd(bind ? "bind" : "unbind"), argc, argv,
			NULL, NULL);
	if (rc)
		return rc == PARSED_HELP ? 0 : rc;
	xname = c->exchange = c->argv[0];
	qname = c->argv[1];
	key = c->argc > 2 ? c->argv[2] : "";
	klen = strlen(key);
	if (klen > SHMQ_KEY_MAX)
		return usage(c, "KEY is %zu bytes; a binding key is 0-%u bytes",
			     klen, SHMQ_KEY_MAX);
	if (seg_attach(c, &seg))
		return EXIT_FAIL;
	rc = bind ? shmq_bind(seg, xname, qname, key) :
		    shmq_unbind(seg, xname, qname, key);
	if (rc)
		rc = bind_failed(c, seg, rc, bind, key);
	shmq_seg_close(seg);
	if (rc)
		return rc;
	if (c->json) {
		printf("{\"segment\":");
		json_str(stdout, c->seg);
		printf(",\"exchange\":");
		json_str(stdout, xname);
		printf(",\"queue\":");
		json_str(stdout, qname);
		printf(",\"key\":");
		json_str(stdout, key);
		printf(",\"%s\":true}\n", bind ? "bound" : "unbound");
		return 0;
	}
	key_text(key, klen, k, sizeof(k));
	printf("%s queue %s %s exchange %s with key %s%s%s\n",
	       bind ? "bound" : "unbound", qname, bind ? "to" : "from", xname,
	       klen ? "'" : "", k, klen ? "'" : "");
	return 0;
}

int cmd_bind(struct ctx *c, int argc, char **argv)
{
	return bind_cmd(c, argc, argv, 1);
}

int cmd_unbind(struct ctx *c, int argc, char **argv)
{
	return bind_cmd(c, argc, argv, 0);
}
