#include <stdlib.h>

/* A fixed-size ring buffer of integers. */
struct ring {
    int *data;
    size_t head, tail, size;
};

/* Push a value, overwriting the oldest when the buffer is full. */
void ring_push(struct ring *r, int value) {
    r->data[r->head] = value;
    r->head = (r->head + 1) % r->size;
    if (r->head == r->tail) r->tail = (r->tail + 1) % r->size;
}
