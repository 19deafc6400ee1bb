// SPDX-License-Identifier: GPL-2.0-only
/* The simulated xenstored: node tree with permissions, queued watch events, transactions. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sim.h"

/* xenstored's limits (docs/misc/xenstore.txt, xs_wire.h XENSTORE_PAYLOAD_MAX). */
#define STORE_VALUE_MAX 4096
#define STORE_PATH_MAX 3072

struct snode {
	char *name;
	char *value;
	uint32_t vlen;
	struct xsim_perm *perms;
	uint32_t nperms;
	struct snode *children;
	struct snode *next;
	uint64_t gen;		/* store_gen when it (value, perms, children) last changed */
};

struct swatch {
	void *owner;
	char *path;		/* canonical (absolute) */
	char *token;
	bool relative;		/* relative to dom0's home: so are its events' paths */
	struct swatch *next;
};

#define DOM0_HOME "/local/domain/0/"


enum schange_op {
	SCHANGE_WRITE,
	SCHANGE_MKDIR,
	SCHANGE_RM,
	SCHANGE_PERMS,
};

/* One operation of a transaction, replayed on the live tree at commit. */
struct schange {
	enum schange_op op;
	char *path;
	char *val;
	uint32_t len;
	struct xsim_perm *perms;
	uint32_t nperms;
	struct schange *next;
};

/* A node a transaction looked at, and what it was then (for conflict checks). */
struct saccess {
	char *path;
	bool existed;
	uint64_t gen;
	struct saccess *next;
};

struct stx {
	uint32_t id;
	void *owner;
	struct snode *root;		/* private copy of the tree */
	struct schange *changes;	/* newest first */
	struct saccess *accesses;
	struct stx *next;
};

static struct snode *store_root;
static uint64_t store_gen;
static struct swatch *store_watches;
static struct stx *store_txs;
static uint32_t store_next_tx = 1;
static store_event_fn store_event;

static struct snode *node_new(const char *name, size_t len)
{
	struct snode *n = calloc(1, sizeof(*n));

	if (!n)
		return NULL;
	n->name = strndup(name, len);
	n->value = calloc(1, 1);
	n->perms = calloc(1, sizeof(*n->perms));
	if (!n->name || !n->value || !n->perms) {
		free(n->name);
		free(n->value);
		free(n->perms);
		free(n);
		return NULL;
	}
	n->nperms = 1;	/* owner dom0, others none */
	return n;
}

static void node_free(struct snode *n)
{
	struct snode *c, *next;

	if (!n)
		return;
	for (c = n->children; c; c = next) {
		next = c->next;
		node_free(c);
	}
	free(n->name);
	free(n->value);
	free(n->perms);
	free(n);
}

static struct snode *node_copy(const struct snode *n)
{
	struct snode *c = node_new(n->name, strlen(n->name));
	const struct snode *ch;
	struct snode **tail;

	if (!c)
		return NULL;
	free(c->value);
	c->value = malloc(n->vlen + 1);
	free(c->perms);
	c->perms = malloc(n->nperms * sizeof(*n->perms));
	if (!c->value || !c->perms) {
		node_free(c);
		return NULL;
	}
	memcpy(c->value, n->value, n->vlen + 1);
	c->vlen = n->vlen;
	c->gen = n->gen;
	memcpy(c->perms, n->perms, n->nperms * sizeof(*n->perms));
	c->nperms = n->nperms;
	tail = &c->children;
	for (ch = n->children; ch; ch = ch->next) {
		*tail = node_copy(ch);
		if (!*tail) {
			node_free(c);
			return NULL;
		}
		tail = &(*tail)->next;
	}
	return c;
}

void store_init(store_event_fn fn)
{
	store_event = fn;
	store_root = node_new("", 0);
	/* Dom0's own nodes, as xenstored and xl create them at boot. */
	store_writef("/local/domain/0/domid", "0");
	store_writef("/local/domain/0/name", "Domain-0");
	store_mkdir(0, NULL, "/local/domain/0/backend");
	store_mkdir(0, NULL, "/tool");
}

static bool path_char_ok(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '/' || c == '_' || c == '@';
}

/* Absolute, canonical path in @buf; relative paths are under dom0's home, as for xenstored. */
static int path_canon(const char *path, char *buf, size_t size)
{
	size_t i, l;

	if (!path || !*path)
		return -EINVAL;
	if (path[0] == '/')
		snprintf(buf, size, "%s", path);
	else
		snprintf(buf, size, "/local/domain/0/%s", path);
	l = strlen(buf);
	if (l >= STORE_PATH_MAX)
		return -E2BIG;
	while (l > 1 && buf[l - 1] == '/')
		buf[--l] = '\0';
	for (i = 0; i < l; i++)
		if (!path_char_ok(buf[i]) || (buf[i] == '/' && buf[i + 1] == '/'))
			return -EINVAL;
	return 0;
}

/* Find a node; with @create, missing ones are made (inheriting the parent's permissions). */
static struct snode *node_lookup(struct snode *root, const char *path, bool create,
				 struct snode **ret_parent)
{
	struct snode *n = root, *parent = NULL, *c;
	const char *p = path;

	while (*p == '/')
		p++;
	while (*p) {
		const char *e = strchr(p, '/');
		size_t len = e ? (size_t)(e - p) : strlen(p);

		for (c = n->children; c; c = c->next)
			if (strlen(c->name) == len && !strncmp(c->name, p, len))
				break;
		if (!c) {
			struct snode **tail;

			if (!create)
				return NULL;
			c = node_new(p, len);
			if (!c)
				return NULL;
			free(c->perms);
			c->perms = malloc(n->nperms * sizeof(*n->perms));
			if (!c->perms) {
				c->perms = NULL;
				node_free(c);
				return NULL;
			}
			memcpy(c->perms, n->perms, n->nperms * sizeof(*n->perms));
			c->nperms = n->nperms;
			for (tail = &n->children; *tail; tail = &(*tail)->next)
				;
			*tail = c;
			c->gen = ++store_gen;
			n->gen = store_gen;	/* its list of children changed */
		}
		parent = n;
		n = c;
		p += len;
		while (*p == '/')
			p++;
	}
	if (ret_parent)
		*ret_parent = parent;
	return n;
}

static struct stx *tx_find(uint32_t id, void *owner)
{
	struct stx *t;

	for (t = store_txs; t; t = t->next)
		if (t->id == id && t->owner == owner)
			return t;
	return NULL;
}

/* The tree an operation works on: the live one, or the transaction's copy. */
static int tree_for(uint32_t tx, void *owner, struct snode **ret_root, struct stx **ret_tx)
{
	struct stx *t = NULL;

	if (tx) {
		t = tx_find(tx, owner);
		if (!t)
			return -ENOENT;
	}
	*ret_root = t ? t->root : store_root;
	*ret_tx = t;
	return 0;
}

/* Is @child equal to or below @parent? */
static bool is_child(const char *child, const char *parent)
{
	size_t l = strlen(parent);

	if (!strcmp(parent, "/"))
		return child[0] == '/';
	return !strncmp(child, parent, l) && (child[l] == '/' || child[l] == '\0');
}

static void fire_one(const struct swatch *w, const char *path)
{
	/* xenstored strips the home prefix again for relative watches. */
	if (w->relative && !strncmp(path, DOM0_HOME, strlen(DOM0_HOME)))
		path += strlen(DOM0_HOME);
	store_event(w->owner, path, w->token);
}

static void fire(const char *path, bool exact)
{
	struct swatch *w;

	for (w = store_watches; w; w = w->next)
		if (exact ? !strcmp(w->path, path) : is_child(path, w->path))
			fire_one(w, path);
}

/* Removing a subtree fires the watches set exactly on each node that goes away (as xenstored). */
static void fire_subtree(const struct snode *n, char *path, size_t len, size_t size)
{
	const struct snode *c;

	for (c = n->children; c; c = c->next) {
		int l = snprintf(path + len, size - len, "/%s", c->name);

		if (l < 0 || (size_t)l >= size - len)
			continue;
		fire(path, true);
		fire_subtree(c, path, len + (size_t)l, size);
		path[len] = '\0';
	}
}

/* A change of the live tree: watches fire (a transaction's fire at commit, when replayed). */
static void changed(struct stx *t, const char *path, bool rm, const struct snode *removed)
{
	if (t)
		return;
	fire(path, false);
	if (rm && removed) {
		char buf[STORE_PATH_MAX + 256];

		snprintf(buf, sizeof(buf), "%s", path);
		fire_subtree(removed, buf, strlen(buf), sizeof(buf));
	}
	pthread_cond_broadcast(&sim_cond);
}

/* Remember what @t saw of @path the first time it touched it. */
static int tx_access(struct stx *t, const char *path)
{
	struct saccess *a;
	struct snode *n;

	if (!t)
		return 0;
	for (a = t->accesses; a; a = a->next)
		if (!strcmp(a->path, path))
			return 0;
	a = calloc(1, sizeof(*a));
	if (!a || !(a->path = strdup(path))) {
		free(a);
		return -ENOMEM;
	}
	n = node_lookup(t->root, path, false, NULL);
	a->existed = n != NULL;
	a->gen = n ? n->gen : 0;
	a->next = t->accesses;
	t->accesses = a;
	return 0;
}

static int tx_record(struct stx *t, enum schange_op op, const char *path, const void *val,
		     uint32_t len, const struct xsim_perm *perms, uint32_t nperms)
{
	struct schange *c;

	if (!t)
		return 0;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->op = op;
	c->path = strdup(path);
	c->val = malloc(len + 1);
	c->perms = malloc((nperms ? nperms : 1) * sizeof(*perms));
	if (!c->path || !c->val || !c->perms) {
		free(c->path);
		free(c->val);
		free(c->perms);
		free(c);
		return -ENOMEM;
	}
	if (len)
		memcpy(c->val, val, len);
	c->len = len;
	if (nperms)
		memcpy(c->perms, perms, nperms * sizeof(*perms));
	c->nperms = nperms;
	c->next = t->changes;
	t->changes = c;
	return 0;
}

/*
 * What every operation on a node starts with: the canonical path in @buf
 * (absolute when @absolute), the tree it works on (a transaction's copy or
 * the live one), and the transaction's record that it looked at the path.
 */
static int store_begin(uint32_t tx, void *owner, const char *path, bool absolute, char *buf,
		       size_t len, struct snode **ret_root, struct stx **ret_tx)
{
	int r = path_canon(path, buf, len);

	if (r == 0 && absolute && buf[0] != '/')
		r = -EINVAL;
	if (r == 0)
		r = tree_for(tx, owner, ret_root, ret_tx);
	if (r == 0)
		r = tx_access(*ret_tx, buf);
	return r;
}

int store_read(uint32_t tx, void *owner, const char *path, char **ret_val, uint32_t *ret_len)
{
	char buf[STORE_PATH_MAX + 32];
	struct snode *root = NULL, *n;
	struct stx *t = NULL;
	char *v;
	int r;

	r = store_begin(tx, owner, path, false, buf, sizeof(buf), &root, &t);
	if (r < 0)
		return r;
	n = node_lookup(root, buf, false, NULL);
	if (!n)
		return -ENOENT;
	v = malloc(n->vlen + 1);
	if (!v)
		return -ENOMEM;
	memcpy(v, n->value, n->vlen + 1);
	*ret_val = v;
	*ret_len = n->vlen;
	return 0;
}

int store_write(uint32_t tx, void *owner, const char *path, const void *val, uint32_t len)
{
	char buf[STORE_PATH_MAX + 32];
	struct snode *root = NULL, *n;
	struct stx *t = NULL;
	char *v;
	int r;

	if (len > STORE_VALUE_MAX)
		return -E2BIG;
	r = store_begin(tx, owner, path, true, buf, sizeof(buf), &root, &t);
	if (r == 0)
		r = tx_record(t, SCHANGE_WRITE, buf, val, len, NULL, 0);
	if (r < 0)
		return r;
	n = node_lookup(root, buf, true, NULL);
	if (!n)
		return -ENOMEM;
	v = malloc(len + 1);
	if (!v)
		return -ENOMEM;
	if (len)
		memcpy(v, val, len);
	v[len] = '\0';
	free(n->value);
	n->value = v;
	n->vlen = len;
	n->gen = ++store_gen;
	changed(t, buf, false, NULL);
	return 0;
}

int store_writef(const char *path, const char *fmt, ...)
{
	char v[STORE_VALUE_MAX + 1];
	va_list ap;
	int l;

	va_start(ap, fmt);
	l = vsnprintf(v, sizeof(v), fmt, ap);
	va_end(ap);
	if (l < 0 || l > STORE_VALUE_MAX)
		return -E2BIG;
	return store_write(0, NULL, path, v, (uint32_t)l);
}

bool store_equals(const char *path, const char *want)
{
	struct snode *n = node_lookup(store_root, path, false, NULL);

	return n && !strcmp(n->value, want);
}

bool store_exists(const char *path)
{
	return node_lookup(store_root, path, false, NULL) != NULL;
}

int store_mkdir(uint32_t tx, void *owner, const char *path)
{
	char buf[STORE_PATH_MAX + 32];
	struct snode *root = NULL;
	struct stx *t = NULL;
	int r;

	r = store_begin(tx, owner, path, true, buf, sizeof(buf), &root, &t);
	if (r < 0)
		return r;
	if (node_lookup(root, buf, false, NULL))
		return 0;
	r = tx_record(t, SCHANGE_MKDIR, buf, NULL, 0, NULL, 0);
	if (r < 0)
		return r;
	if (!node_lookup(root, buf, true, NULL))
		return -ENOMEM;
	changed(t, buf, false, NULL);
	return 0;
}

int store_rm(uint32_t tx, void *owner, const char *path)
{
	char buf[STORE_PATH_MAX + 32];
	struct snode *root = NULL, *n, *parent = NULL, **pp;
	char *slash;
	struct stx *t = NULL;
	int r;

	r = store_begin(tx, owner, path, false, buf, sizeof(buf), &root, &t);
	if (r < 0)
		return r;
	if (!strcmp(buf, "/"))
		return -EINVAL;
	n = node_lookup(root, buf, false, &parent);
	if (!n) {
		/* xenstored: removing a missing node is fine if its parent exists. */
		slash = strrchr(buf, '/');
		if (slash && slash != buf) {
			*slash = '\0';
			if (node_lookup(root, buf, false, NULL))
				return 0;
		} else if (slash) {
			return 0;
		}
		return -ENOENT;
	}
	r = tx_record(t, SCHANGE_RM, buf, NULL, 0, NULL, 0);
	if (r < 0)
		return r;
	for (pp = &parent->children; *pp != n; pp = &(*pp)->next)
		;
	*pp = n->next;
	n->next = NULL;
	parent->gen = ++store_gen;
	changed(t, buf, true, n);
	node_free(n);
	return 0;
}

int store_dir(uint32_t tx, void *owner, const char *path, char **ret_names, uint32_t *ret_len,
	      uint32_t *ret_count)
{
	char buf[STORE_PATH_MAX + 32];
	struct snode *root = NULL, *n, *c;
	uint32_t len = 0, count = 0;
	struct stx *t = NULL;
	char *names, *p;
	int r;

	r = store_begin(tx, owner, path, false, buf, sizeof(buf), &root, &t);
	if (r < 0)
		return r;
	n = node_lookup(root, buf, false, NULL);
	if (!n)
		return -ENOENT;
	for (c = n->children; c; c = c->next) {
		len += (uint32_t)strlen(c->name) + 1;
		count++;
	}
	if (len > XSIM_TAIL_MAX)
		return -E2BIG;
	names = malloc(len + 1);
	if (!names)
		return -ENOMEM;
	p = names;
	for (c = n->children; c; c = c->next) {
		size_t l = strlen(c->name) + 1;

		memcpy(p, c->name, l);
		p += l;
	}
	*ret_names = names;
	*ret_len = len;
	*ret_count = count;
	return 0;
}

int store_get_perms(uint32_t tx, void *owner, const char *path, struct xsim_perm **ret_perms,
		    uint32_t *ret_n)
{
	char buf[STORE_PATH_MAX + 32];
	struct snode *root = NULL, *n;
	struct xsim_perm *p;
	struct stx *t = NULL;
	int r;

	r = store_begin(tx, owner, path, false, buf, sizeof(buf), &root, &t);
	if (r < 0)
		return r;
	n = node_lookup(root, buf, false, NULL);
	if (!n)
		return -ENOENT;
	p = malloc(n->nperms * sizeof(*p));
	if (!p)
		return -ENOMEM;
	memcpy(p, n->perms, n->nperms * sizeof(*p));
	*ret_perms = p;
	*ret_n = n->nperms;
	return 0;
}

int store_set_perms(uint32_t tx, void *owner, const char *path, const struct xsim_perm *perms,
		    uint32_t nperms)
{
	char buf[STORE_PATH_MAX + 32];
	struct snode *root = NULL, *n;
	struct xsim_perm *p;
	struct stx *t = NULL;
	int r;

	if (!nperms || nperms > 64)
		return -EINVAL;
	r = store_begin(tx, owner, path, false, buf, sizeof(buf), &root, &t);
	if (r < 0)
		return r;
	n = node_lookup(root, buf, false, NULL);
	if (!n)
		return -ENOENT;
	r = tx_record(t, SCHANGE_PERMS, buf, NULL, 0, perms, nperms);
	if (r < 0)
		return r;
	p = malloc(nperms * sizeof(*p));
	if (!p)
		return -ENOMEM;
	memcpy(p, perms, nperms * sizeof(*p));
	free(n->perms);
	n->perms = p;
	n->nperms = nperms;
	n->gen = ++store_gen;
	changed(t, buf, false, NULL);
	return 0;
}

int store_watch(void *owner, const char *path, const char *token)
{
	char buf[STORE_PATH_MAX + 32];
	struct swatch *w;
	int r;

	if (path[0] == '@') {
		if (strcmp(path, "@introduceDomain") && strcmp(path, "@releaseDomain"))
			return -EINVAL;
		snprintf(buf, sizeof(buf), "%s", path);
	} else {
		r = path_canon(path, buf, sizeof(buf));
		if (r < 0)
			return r;
	}
	for (w = store_watches; w; w = w->next)
		if (w->owner == owner && !strcmp(w->path, buf) && !strcmp(w->token, token))
			return -EEXIST;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->owner = owner;
	w->path = strdup(buf);
	w->token = strdup(token);
	w->relative = path[0] != '/' && path[0] != '@';
	if (!w->path || !w->token) {
		free(w->path);
		free(w->token);
		free(w);
		return -ENOMEM;
	}
	w->next = store_watches;
	store_watches = w;
	/* xenstored fires every new watch once, with its own path. */
	fire_one(w, buf);
	return 0;
}

static void watch_free(struct swatch *w)
{
	free(w->path);
	free(w->token);
	free(w);
}

int store_unwatch(void *owner, const char *path, const char *token)
{
	char buf[STORE_PATH_MAX + 32];
	struct swatch **pp, *w;

	if (path[0] == '@')
		snprintf(buf, sizeof(buf), "%s", path);
	else if (path_canon(path, buf, sizeof(buf)) < 0)
		return -EINVAL;
	for (pp = &store_watches; (w = *pp); pp = &w->next)
		if (w->owner == owner && !strcmp(w->path, buf) && !strcmp(w->token, token)) {
			*pp = w->next;
			watch_free(w);
			return 0;
		}
	return -ENOENT;
}

int store_tx_start(void *owner, uint32_t *ret_id)
{
	struct stx *t = calloc(1, sizeof(*t));

	if (!t)
		return -ENOMEM;
	t->root = node_copy(store_root);
	if (!t->root) {
		free(t);
		return -ENOMEM;
	}
	t->id = store_next_tx++;
	if (!store_next_tx)
		store_next_tx = 1;
	t->owner = owner;
	t->next = store_txs;
	store_txs = t;
	*ret_id = t->id;
	return 0;
}

static void tx_free(struct stx *t)
{
	struct saccess *a, *an;
	struct schange *c, *n;

	for (c = t->changes; c; c = n) {
		n = c->next;
		free(c->path);
		free(c->val);
		free(c->perms);
		free(c);
	}
	for (a = t->accesses; a; a = an) {
		an = a->next;
		free(a->path);
		free(a);
	}
	node_free(t->root);
	free(t);
}

int store_tx_end(void *owner, uint32_t id, bool abort)
{
	struct schange *c, *rev = NULL, *n;
	struct saccess *a;
	struct stx **pp, *t;

	for (pp = &store_txs; (t = *pp); pp = &t->next)
		if (t->id == id && t->owner == owner)
			break;
	if (!t)
		return -ENOENT;
	*pp = t->next;
	if (abort || !t->changes) {
		tx_free(t);
		return 0;
	}
	/*
	 * Optimistic concurrency, as xenstored: if a node this transaction
	 * looked at changed (or appeared, or vanished) since, the caller retries.
	 */
	for (a = t->accesses; a; a = a->next) {
		struct snode *live = node_lookup(store_root, a->path, false, NULL);

		if (!!live != a->existed || (live && live->gen != a->gen)) {
			tx_free(t);
			return -EAGAIN;
		}
	}
	for (c = t->changes; c; c = n) {
		n = c->next;
		c->next = rev;
		rev = c;
	}
	t->changes = rev;
	/* Replay on the live tree, in order: watches fire now, once per change. */
	for (c = t->changes; c; c = c->next) {
		switch (c->op) {
		case SCHANGE_WRITE:
			store_write(0, owner, c->path, c->val, c->len);
			break;
		case SCHANGE_MKDIR:
			store_mkdir(0, owner, c->path);
			break;
		case SCHANGE_RM:
			store_rm(0, owner, c->path);
			break;
		case SCHANGE_PERMS:
			store_set_perms(0, owner, c->path, c->perms, c->nperms);
			break;
		}
	}
	tx_free(t);
	return 0;
}

void store_drop_owner(void *owner)
{
	struct swatch **wp = &store_watches, *w;
	struct stx **tp = &store_txs, *t;

	while ((w = *wp)) {
		if (w->owner == owner) {
			*wp = w->next;
			watch_free(w);
		} else {
			wp = &w->next;
		}
	}
	while ((t = *tp)) {
		if (t->owner == owner) {
			*tp = t->next;
			tx_free(t);
		} else {
			tp = &t->next;
		}
	}
}

void store_fire_special(const char *name)
{
	fire(name, true);
}

void store_stats(struct xsim_stats *st)
{
	struct swatch *w;
	struct stx *t;

	st->watches = 0;
	st->transactions = 0;
	for (w = store_watches; w; w = w->next)
		st->watches++;
	for (t = store_txs; t; t = t->next)
		st->transactions++;
}
