// SPDX-License-Identifier: GPL-2.0-or-later
// The translation unit that builds the tests' shared precompiled header
// (tests/CMakeLists.txt, HANAT_TEST_PCH); it has no code of its own.
