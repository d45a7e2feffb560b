/*
 * LD_PRELOAD shim for the kmod oracles: readdir() returns each directory's
 * entries sorted by name (strcmp, i.e. byte order) instead of in the file
 * system's order.
 *
 * kmod walks the module tree in readdir order, and two things depend on it:
 * which of two equally ranked duplicate modules wins (compat §2.4) and the order
 * of its messages about directory entries. Our depmod walks each directory in
 * name order, so that those are the same on every file system; kmod run with
 * this shim is the oracle for exactly that walk.
 *
 * Built by tests/common/oracle.rs with the system C compiler. kmod is
 * single-threaded; the table below is not locked.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>

struct listing {
    DIR *dir;
    struct dirent *entries;
    size_t count, next;
    struct listing *link;
};

static struct listing *listings;

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct dirent *)a)->d_name,
                  ((const struct dirent *)b)->d_name);
}

static struct dirent *(*real_readdir(void))(DIR *)
{
    static struct dirent *(*real)(DIR *);
    if (!real)
        real = (struct dirent * (*)(DIR *)) dlsym(RTLD_NEXT, "readdir");
    return real;
}

static struct listing *load(DIR *dir)
{
    struct listing *l;
    struct dirent *e;
    size_t cap = 64;

    for (l = listings; l; l = l->link)
        if (l->dir == dir)
            return l;
    l = calloc(1, sizeof(*l));
    if (!l)
        abort();
    l->dir = dir;
    l->entries = malloc(cap * sizeof(struct dirent));
    if (!l->entries)
        abort();
    while ((e = real_readdir()(dir)) != NULL) {
        if (l->count == cap) {
            cap *= 2;
            l->entries = realloc(l->entries, cap * sizeof(struct dirent));
            if (!l->entries)
                abort();
        }
        /* Field by field: the record may be shorter than struct dirent. */
        struct dirent *to = &l->entries[l->count++];
        memset(to, 0, sizeof(*to));
        to->d_ino = e->d_ino;
        to->d_off = e->d_off;
        to->d_reclen = sizeof(*to);
        to->d_type = e->d_type;
        /* memset left the final NUL; names are at most NAME_MAX bytes. */
        memcpy(to->d_name, e->d_name,
               strnlen(e->d_name, sizeof(to->d_name) - 1));
    }
    qsort(l->entries, l->count, sizeof(struct dirent), by_name);
    l->link = listings;
    listings = l;
    return l;
}

struct dirent *readdir(DIR *dir)
{
    struct listing *l = load(dir);
    return l->next < l->count ? &l->entries[l->next++] : NULL;
}

struct dirent64 *readdir64(DIR *dir)
{
    /* On 64-bit glibc, struct dirent and struct dirent64 are the same. */
    return (struct dirent64 *)readdir(dir);
}

int closedir(DIR *dir)
{
    static int (*real)(DIR *);
    struct listing **p;

    if (!real)
        real = (int (*)(DIR *))dlsym(RTLD_NEXT, "closedir");
    for (p = &listings; *p; p = &(*p)->link) {
        if ((*p)->dir == dir) {
            struct listing *l = *p;
            *p = l->link;
            free(l->entries);
            free(l);
            break;
        }
    }
    return real(dir);
}
