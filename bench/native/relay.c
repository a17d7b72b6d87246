/*
 * Bench only: a byte relay between two connected sockets, run in C on Node's own libuv
 * loop (an N-API addon). It measures what a Node process pays for a proxied WebSocket
 * when no JavaScript runs per read or write: the `native` row of the `ws` scenario.
 * The gateway does not use it.
 *
 * start(fdA, fdB, onEnd): relays until either side ends or fails, then calls onEnd(reason)
 * once; the caller then destroys both sockets. The caller must have stopped Node's own
 * reading of both sockets. The relay polls dup()s of the descriptors, so Node's handles
 * keep theirs and close them as usual; and so destroying the sockets in JavaScript does not
 * end a relay: only a side's end or failure does (or the process exiting). An exception
 * thrown by onEnd is reported as uncaught, as one thrown by any Node callback. One buffer per direction: a side is not read while
 * the bytes it sent are not all written to the other (backpressure, as nginx does it).
 */
#include <errno.h>
#include <node_api.h>
#include <stdlib.h>
#include <unistd.h>
#include <uv.h>

#define BUF_SIZE 65536

typedef struct relay relay_t;

typedef struct {
  char data[BUF_SIZE];
  size_t off, len;
} buffer_t;

typedef struct {
  uv_poll_t poll;
  int fd;
  int events; /* what the poll handle waits for now; -1 before the first start */
  int index;
  relay_t *relay;
} side_t;

struct relay {
  side_t side[2];
  buffer_t from[2]; /* from[i]: bytes read from side i, not yet written to side 1 - i */
  napi_env env;
  napi_ref on_end;
  napi_async_context context;
  int ended;
  int open_handles;
};

static void on_poll(uv_poll_t *handle, int status, int events);
static void end(relay_t *r, const char *reason);

static void on_closed(uv_handle_t *handle) {
  relay_t *r = ((side_t *)handle->data)->relay;
  if (--r->open_handles == 0) free(r);
}

static void end(relay_t *r, const char *reason) {
  if (r->ended) return;
  r->ended = 1;
  for (int i = 0; i < 2; i++) {
    uv_poll_stop(&r->side[i].poll);
    close(r->side[i].fd);
  }
  r->open_handles = 2;
  for (int i = 0; i < 2; i++) uv_close((uv_handle_t *)&r->side[i].poll, on_closed);

  napi_env env = r->env;
  napi_handle_scope scope;
  napi_value callback, recv, arg;
  napi_status status = napi_open_handle_scope(env, &scope);
  int scoped = status == napi_ok;
  if (scoped) {
    napi_get_reference_value(env, r->on_end, &callback);
    napi_get_global(env, &recv);
    napi_create_string_utf8(env, reason, NAPI_AUTO_LENGTH, &arg);
    /* make_callback, not call_function: process.nextTick work queued by onEnd runs after it. */
    status = napi_make_callback(env, r->context, recv, callback, 1, &arg, NULL);
  }
  if (status == napi_pending_exception) {
    /* Left pending, the error would be thrown by whatever calls into the addon next. */
    napi_value error;
    napi_get_and_clear_last_exception(env, &error);
    napi_fatal_exception(env, error);
  }
  napi_delete_reference(env, r->on_end);
  napi_async_destroy(env, r->context);
  if (scoped) napi_close_handle_scope(env, scope);
}

/* Writes what side i sent to side 1 - i. Returns 0, or -1 when the other side failed. */
static int flush(relay_t *r, int i) {
  buffer_t *b = &r->from[i];
  while (b->off < b->len) {
    ssize_t n = write(r->side[1 - i].fd, b->data + b->off, b->len - b->off);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno == EAGAIN || errno == EWOULDBLOCK ? 0 : -1;
    }
    b->off += (size_t)n;
  }
  b->off = b->len = 0;
  return 0;
}

/* Each side is read while its buffer is empty and waits to write while the other's is not. */
static void update(relay_t *r) {
  for (int i = 0; i < 2; i++) {
    side_t *s = &r->side[i];
    int events = (r->from[i].len == 0 ? UV_READABLE : 0) | (r->from[1 - i].len > 0 ? UV_WRITABLE : 0);
    if (events == s->events) continue;
    s->events = events;
    if (events == 0) uv_poll_stop(&s->poll);
    else if (uv_poll_start(&s->poll, events, on_poll) != 0) {
      end(r, "cannot poll the socket");
      return;
    }
  }
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  side_t *s = (side_t *)handle->data;
  relay_t *r = s->relay;
  int i = s->index;
  if (r->ended) return;
  if (status < 0) {
    end(r, uv_strerror(status));
    return;
  }
  if ((events & UV_WRITABLE) && flush(r, 1 - i) < 0) {
    end(r, "write failed");
    return;
  }
  if ((events & UV_READABLE) && r->from[i].len == 0) {
    ssize_t n = read(s->fd, r->from[i].data, BUF_SIZE);
    if (n == 0) {
      end(r, i == 0 ? "end of the first socket" : "end of the second socket");
      return;
    }
    if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
      end(r, "read failed");
      return;
    }
    if (n > 0) {
      r->from[i].len = (size_t)n;
      if (flush(r, i) < 0) {
        end(r, "write failed");
        return;
      }
    }
  }
  update(r);
}

static napi_value start(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  int32_t fd[2];
  napi_valuetype type;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3 || napi_get_value_int32(env, argv[0], &fd[0]) != napi_ok || napi_get_value_int32(env, argv[1], &fd[1]) != napi_ok ||
      napi_typeof(env, argv[2], &type) != napi_ok || type != napi_function || fd[0] < 0 || fd[1] < 0) {
    napi_throw_type_error(env, NULL, "start(fdA, fdB, onEnd): two descriptors and a function");
    return NULL;
  }
  uv_loop_t *loop;
  if (napi_get_uv_event_loop(env, &loop) != napi_ok) {
    napi_throw_error(env, NULL, "no event loop");
    return NULL;
  }
  relay_t *r = calloc(1, sizeof(relay_t));
  if (r == NULL) {
    napi_throw_error(env, NULL, "out of memory");
    return NULL;
  }
  int copy[2] = { dup(fd[0]), dup(fd[1]) };
  for (int i = 0; i < 2; i++) {
    side_t *s = &r->side[i];
    s->fd = copy[i];
    s->events = -1;
    s->index = i;
    s->relay = r;
    s->poll.data = s;
    if (copy[0] < 0 || copy[1] < 0 || uv_poll_init(loop, &s->poll, copy[i]) != 0) {
      for (int j = 0; j < 2; j++) if (copy[j] >= 0) close(copy[j]);
      r->ended = 1;
      if (i == 0) free(r);
      else {
        r->open_handles = 1;
        uv_close((uv_handle_t *)&r->side[0].poll, on_closed);
      }
      napi_throw_error(env, NULL, "cannot poll the sockets");
      return NULL;
    }
  }
  napi_value name;
  r->env = env;
  napi_create_reference(env, argv[2], 1, &r->on_end);
  napi_create_string_utf8(env, "NativeRelay", NAPI_AUTO_LENGTH, &name);
  napi_async_init(env, NULL, name, &r->context);
  update(r);
  return NULL;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  napi_create_function(env, "start", NAPI_AUTO_LENGTH, start, NULL, &fn);
  napi_set_named_property(env, exports, "start", fn);
  return exports;
}
