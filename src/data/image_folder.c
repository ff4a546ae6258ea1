/* image_folder.c: lists ROOT/<class>/<file> as ImageFolder does (image_folder.h). Never opens a file:
 * only folders are read, so that every error about a file's contents comes from the decoding pass. */
#include "image_folder.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "error.h"

#define MAX_DEPTH 32

typedef struct {
  char **v;
  size_t n, cap;
} strvec;

static void push(strvec *s, char *x) {
  if (s->n == s->cap) {
    s->cap = s->cap ? 2 * s->cap : 64;
    char **v = realloc(s->v, s->cap * sizeof *v);
    if (!v) VAE_FAIL("out of memory listing files");
    s->v = v;
  }
  s->v[s->n++] = x;
}

static char *join(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  char *p = mallocCheck(la + lb + 2);
  memcpy(p, a, la);
  p[la] = '/';
  memcpy(p + la + 1, b, lb + 1);
  return p;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* The entries of one folder, sorted, split into folders and everything else (a dangling symbolic
 * link or a FIFO is "everything else": the decoding pass says what is wrong with it). */
static int read_dir(const char *dir, strvec *dirs, strvec *files, char *err) {
  DIR *d = opendir(dir);
  if (!d) return vae_err(err, "cannot read folder %s: %s", dir, strerror(errno));
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
    char *p = join(dir, e->d_name);
    struct stat st;
    int is_dir = stat(p, &st) == 0 && S_ISDIR(st.st_mode);
    free(p);
    char *name = mallocCheck(strlen(e->d_name) + 1);
    strcpy(name, e->d_name);
    push(is_dir ? dirs : files, name);
  }
  closedir(d);
  if (dirs->n > 1) qsort(dirs->v, dirs->n, sizeof *dirs->v, cmp_str);
  if (files->n > 1) qsort(files->v, files->n, sizeof *files->v, cmp_str);
  return 0;
}

static void free_vec(strvec *s) {
  for (size_t i = 0; i < s->n; i++) free(s->v[i]);
  free(s->v);
  memset(s, 0, sizeof *s);
}

/* Every file below dir as (folder, name) pairs, into folders/names (in step). */
static int walk(const char *dir, int depth, strvec *folders, strvec *names, char *err) {
  if (depth > MAX_DEPTH)
    return vae_err(err, "%s: folders nested more than %d deep (a symbolic link loop?)", dir, MAX_DEPTH);
  strvec dirs = {0}, files = {0};
  int rc = read_dir(dir, &dirs, &files, err);
  for (size_t i = 0; rc == 0 && i < files.n; i++) {
    char *f = mallocCheck(strlen(dir) + 1);
    strcpy(f, dir);
    push(folders, f);
    push(names, files.v[i]);
    files.v[i] = NULL;
  }
  for (size_t i = 0; rc == 0 && i < dirs.n; i++) {
    char *sub = join(dir, dirs.v[i]);
    rc = walk(sub, depth + 1, folders, names, err);
    free(sub);
  }
  free_vec(&dirs);
  free_vec(&files);
  return rc;
}

typedef struct {
  const char *folder, *name;
} file_ref;

static int cmp_ref(const void *a, const void *b) {
  const file_ref *x = a, *y = b;
  int c = strcmp(x->folder, y->folder);
  return c ? c : strcmp(x->name, y->name);
}

/* The files below a class folder as full paths, in ImageFolder's order: sorted(os.walk(dir)) sorts
 * by folder path string, then each folder's files by name. */
static int class_files(const char *dir, strvec *out, char *err) {
  strvec folders = {0}, names = {0};
  int rc = walk(dir, 1, &folders, &names, err);
  if (rc == 0) {
    file_ref *r = mallocCheck((names.n ? names.n : 1) * sizeof *r);
    for (size_t i = 0; i < names.n; i++) r[i] = (file_ref){folders.v[i], names.v[i]};
    qsort(r, names.n, sizeof *r, cmp_ref);
    for (size_t i = 0; i < names.n; i++) push(out, join(r[i].folder, r[i].name));
    free(r);
  }
  free_vec(&folders);
  free_vec(&names);
  return rc;
}

/* The last component of a path ("data/emoji/" -> "emoji"). */
static char *base_name(const char *path) {
  size_t n = strlen(path);
  while (n > 1 && path[n - 1] == '/') n--;
  size_t b = n;
  while (b > 0 && path[b - 1] != '/') b--;
  char *s = mallocCheck(n - b + 1);
  memcpy(s, path + b, n - b);
  s[n - b] = '\0';
  return s;
}

static int scan(const char *root, vae_image_list *l, strvec *paths, strvec *classes, strvec *files,
                size_t **ends, char *err) {
  struct stat st;
  if (stat(root, &st) != 0) return vae_err(err, "--dir %s: %s", root, strerror(errno));
  if (!S_ISDIR(st.st_mode)) return vae_err(err, "--dir %s is not a folder", root);
  if (read_dir(root, classes, files, err) < 0) return -1;
  if (classes->n == 0) { /* one unlabelled class: the files of root itself */
    if (files->n == 0)
      return vae_err(err, "--dir %s is empty: put the images in it, or in one folder per class", root);
    char *name = base_name(root);
    push(classes, name);
    for (size_t i = 0; i < files->n; i++) push(paths, join(root, files->v[i]));
    *ends = mallocCheck(sizeof **ends);
    (*ends)[0] = paths->n;
    return 0;
  }
  l->labelled = 1;
  *ends = mallocCheck(classes->n * sizeof **ends);
  for (size_t c = 0; c < classes->n; c++) {
    char *dir = join(root, classes->v[c]);
    int rc = class_files(dir, paths, err);
    if (rc == 0 && paths->n == (c ? (*ends)[c - 1] : 0))
      rc = vae_err(err, "class folder %s has no files; remove it, or put its images in it", dir);
    free(dir);
    if (rc < 0) return -1;
    (*ends)[c] = paths->n;
  }
  return 0;
}

int vae_image_list_scan(const char *root, vae_image_list *l, char *err) {
  memset(l, 0, sizeof *l);
  strvec paths = {0}, classes = {0}, files = {0};
  size_t *ends = NULL;
  int rc = scan(root, l, &paths, &classes, &files, &ends, err);
  if (rc == 0) {
    l->n = paths.n;
    l->path = paths.v;
    l->nclasses = (int)classes.n;
    l->classes = classes.v;
    l->label = mallocCheck((paths.n ? paths.n : 1) * sizeof *l->label);
    for (size_t i = 0, c = 0; i < paths.n; i++) {
      while (i >= ends[c]) c++;
      l->label[i] = (int)c;
    }
    if (l->labelled) { /* files beside the class folders */
      for (size_t i = 0; i < files.n; i++) {
        char *p = join(root, files.v[i]);
        free(files.v[i]);
        files.v[i] = p;
      }
      l->nstray = files.n;
      l->stray = files.v;
      files.v = NULL;
      files.n = 0;
    }
  } else {
    free_vec(&paths);
    free_vec(&classes);
  }
  free_vec(&files);
  free(ends);
  return rc;
}

void vae_image_list_free(vae_image_list *l) {
  for (size_t i = 0; i < l->n; i++) free(l->path[i]);
  for (int i = 0; i < l->nclasses; i++) free(l->classes[i]);
  for (size_t i = 0; i < l->nstray; i++) free(l->stray[i]);
  free(l->path);
  free(l->classes);
  free(l->stray);
  free(l->label);
  memset(l, 0, sizeof *l);
}
