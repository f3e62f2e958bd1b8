/*
 * test_fsutil.c - unit tests of plugin/fsutil.c: rg_private_dir() creates
 * what is missing 0700, accepts a private directory as it is, and refuses
 * (without repairing) one that others could change or that is not a plain
 * directory of ours.
 */
#define _GNU_SOURCE
#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "fsutil.h"

static char base[] = "/tmp/rg-fsutil.XXXXXX";
static char err[512];

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static void setup(void)
{
	strcpy(base, "/tmp/rg-fsutil.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(base));
	err[0] = '\0';
}

static void teardown(void)
{
	nftw(base, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static char *in_base(const char *name)
{
	static char path[4][256];
	static int next;
	char *p = path[next++ % 4];
	snprintf(p, sizeof path[0], "%s/%s", base, name);
	return p;
}

static unsigned mode_of(const char *path)
{
	struct stat st;
	ck_assert_int_eq(lstat(path, &st), 0);
	return (unsigned)(st.st_mode & 07777);
}

static void make_dir(const char *path, mode_t mode)
{
	ck_assert_int_eq(mkdir(path, 0700), 0);
	ck_assert_int_eq(chmod(path, mode), 0); /* exact mode, whatever the umask */
}

START_TEST(test_missing_directory_is_created_0700_with_its_parents)
{
	char *dir = in_base("state/spool");
	mode_t old = umask(0); /* 0700 is asked for, not left to the umask */
	int rc = rg_private_dir(dir, err, sizeof err);
	umask(old);
	ck_assert_msg(rc == 0, "%s", err);
	ck_assert_uint_eq(mode_of(dir), 0700);
	ck_assert_uint_eq(mode_of(in_base("state")), 0700);
}
END_TEST

START_TEST(test_trailing_slash_is_the_same_directory)
{
	char path[300];
	snprintf(path, sizeof path, "%s/", in_base("spool"));
	ck_assert_msg(rg_private_dir(path, err, sizeof err) == 0, "%s", err);
	ck_assert_uint_eq(mode_of(in_base("spool")), 0700);
	ck_assert_msg(rg_private_dir(path, err, sizeof err) == 0, "%s", err);
}
END_TEST

START_TEST(test_existing_private_directory_is_accepted)
{
	char *dir = in_base("ledger");
	make_dir(dir, 0700);
	ck_assert_msg(rg_private_dir(dir, err, sizeof err) == 0, "%s", err);
	ck_assert_uint_eq(mode_of(dir), 0700);
}
END_TEST

START_TEST(test_existing_readable_directory_is_accepted_and_left_as_it_is)
{
	char *dir = in_base("ledger");
	make_dir(dir, 0755);
	ck_assert_msg(rg_private_dir(dir, err, sizeof err) == 0, "%s", err);
	ck_assert_uint_eq(mode_of(dir), 0755);
}
END_TEST

START_TEST(test_world_writable_directory_is_refused_and_not_chmoded)
{
	char *dir = in_base("spool");
	make_dir(dir, 0777);
	ck_assert_int_eq(rg_private_dir(dir, err, sizeof err), -1);
	ck_assert_msg(strstr(err, dir) && strstr(err, "world-writable") && strstr(err, "0777"),
		      "%s", err);
	ck_assert_uint_eq(mode_of(dir), 0777);
}
END_TEST

START_TEST(test_sticky_world_writable_directory_is_refused)
{
	char *dir = in_base("spool");
	make_dir(dir, 01777);
	ck_assert_int_eq(rg_private_dir(dir, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "world-writable"), "%s", err);
}
END_TEST

START_TEST(test_group_writable_directory_is_refused)
{
	char *dir = in_base("spool");
	make_dir(dir, 0770);
	ck_assert_int_eq(rg_private_dir(dir, err, sizeof err), -1);
	ck_assert_msg(strstr(err, dir) && strstr(err, "group-writable"), "%s", err);
	ck_assert_uint_eq(mode_of(dir), 0770);
}
END_TEST

START_TEST(test_symlink_is_refused_even_to_a_private_directory)
{
	char *real = in_base("real"), *link = in_base("link");
	char slash[300];
	make_dir(real, 0700);
	ck_assert_int_eq(symlink(real, link), 0);
	ck_assert_int_eq(rg_private_dir(link, err, sizeof err), -1);
	ck_assert_msg(strstr(err, link) && strstr(err, "symbolic link"), "%s", err);
	/* a trailing slash must not make it follow the link */
	snprintf(slash, sizeof slash, "%s/", link);
	ck_assert_int_eq(rg_private_dir(slash, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "symbolic link"), "%s", err);
}
END_TEST

START_TEST(test_dangling_symlink_is_refused_not_created_through)
{
	char *link = in_base("link");
	ck_assert_int_eq(symlink(in_base("elsewhere"), link), 0);
	ck_assert_int_eq(rg_private_dir(link, err, sizeof err), -1);
	ck_assert_msg(strstr(err, "symbolic link"), "%s", err);
	ck_assert_int_eq(access(in_base("elsewhere"), F_OK), -1);
}
END_TEST

START_TEST(test_regular_file_is_refused)
{
	char *file = in_base("spool");
	FILE *f = fopen(file, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	ck_assert_int_eq(rg_private_dir(file, err, sizeof err), -1);
	ck_assert_msg(strstr(err, file) && strstr(err, "not a directory"), "%s", err);
}
END_TEST

START_TEST(test_file_in_the_way_of_a_parent_is_named)
{
	char *file = in_base("state");
	FILE *f = fopen(file, "w");
	ck_assert_ptr_nonnull(f);
	fclose(f);
	ck_assert_int_eq(rg_private_dir(in_base("state/spool"), err, sizeof err), -1);
	ck_assert_msg(strstr(err, file), "%s", err);
}
END_TEST

START_TEST(test_empty_path_is_refused)
{
	ck_assert_int_eq(rg_private_dir("", err, sizeof err), -1);
	ck_assert_str_ne(err, "");
	ck_assert_int_eq(rg_private_dir(NULL, err, sizeof err), -1);
}
END_TEST

/* Without root, a root-owned directory stands in for "someone else's";
 * as root, a directory is given to nobody (skipped where chown is not
 * possible, e.g. an unmapped user namespace). */
START_TEST(test_directory_owned_by_another_uid_is_refused)
{
	const char *dir;
	if (geteuid() != 0) {
		struct stat st;
		dir = "/";
		ck_assert_int_eq(lstat(dir, &st), 0);
		if (st.st_uid == geteuid() || (st.st_mode & (S_IWGRP | S_IWOTH)))
			return; /* not a usable stand-in on this machine */
	} else {
		dir = in_base("theirs");
		make_dir(dir, 0700);
		if (chown(dir, 65534, 65534) != 0) {
			fprintf(stderr, "ownership test skipped: chown: %s\n", strerror(errno));
			return;
		}
	}
	ck_assert_int_eq(rg_private_dir(dir, err, sizeof err), -1);
	ck_assert_msg(strstr(err, dir) && strstr(err, "owned by uid"), "%s", err);
}
END_TEST

static Suite *fsutil_suite(void)
{
	Suite *s = suite_create("fsutil");
	TCase *tc = tcase_create("private_dir");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_missing_directory_is_created_0700_with_its_parents);
	tcase_add_test(tc, test_trailing_slash_is_the_same_directory);
	tcase_add_test(tc, test_existing_private_directory_is_accepted);
	tcase_add_test(tc, test_existing_readable_directory_is_accepted_and_left_as_it_is);
	tcase_add_test(tc, test_world_writable_directory_is_refused_and_not_chmoded);
	tcase_add_test(tc, test_sticky_world_writable_directory_is_refused);
	tcase_add_test(tc, test_group_writable_directory_is_refused);
	tcase_add_test(tc, test_symlink_is_refused_even_to_a_private_directory);
	tcase_add_test(tc, test_dangling_symlink_is_refused_not_created_through);
	tcase_add_test(tc, test_regular_file_is_refused);
	tcase_add_test(tc, test_file_in_the_way_of_a_parent_is_named);
	tcase_add_test(tc, test_empty_path_is_refused);
	tcase_add_test(tc, test_directory_owned_by_another_uid_is_refused);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(fsutil_suite());
	srunner_run_all(sr, CK_NORMAL);
	int failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
