/* cohortflow.contract._timestamps: cohortflow.contract.timestamps.parse_occurred_at compiled.
 *
 * The Python function in cohortflow/contract/timestamps.py is the reference (a strict RFC 3339 regex, then
 * datetime.fromisoformat); tests/contract/test_timestamps.py holds this one to it for any text. The worker
 * reads one timestamp a record, and this is several times cheaper than the regex and fromisoformat.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>

static int digits(const unsigned char *p, int n, int *out) {
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (p[i] < '0' || p[i] > '9') return 0;
        v = v * 10 + (p[i] - '0');
    }
    *out = v;
    return 1;
}

static int leap(long long y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

static int month_days(long long y, int m) {
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return m == 2 && leap(y) ? 29 : days[m - 1];
}

/* Days since 1970-01-01 of a proleptic Gregorian date, and back (Howard Hinnant's algorithms). */
static long long days_from_civil(long long y, int m, int d) {
    y -= m <= 2;
    long long era = (y >= 0 ? y : y - 399) / 400;
    long long yoe = y - era * 400;
    long long doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    long long doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(long long z, long long *y, int *m, int *d) {
    z += 719468;
    long long era = (z >= 0 ? z : z - 146096) / 146097;
    long long doe = z - era * 146097;
    long long yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    long long doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    long long mp = (5 * doy + 2) / 153;
    *d = (int)(doy - (153 * mp + 2) / 5 + 1);
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

static PyObject *parse_occurred_at(PyObject *module, PyObject *text) {
    (void)module;
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "parse_occurred_at: expected str, not %.80s", Py_TYPE(text)->tp_name);
        return NULL;
    }
    if (!PyUnicode_IS_ASCII(text)) Py_RETURN_NONE; /* the shape is ASCII only */
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    const unsigned char *s = PyUnicode_1BYTE_DATA(text);
    int year, month, day, hour, minute, second, micro = 0, offset = 0;
    if (n < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't' && s[10] != ' ') || s[13] != ':' ||
        s[16] != ':' || !digits(s, 4, &year) || !digits(s + 5, 2, &month) || !digits(s + 8, 2, &day) ||
        !digits(s + 11, 2, &hour) || !digits(s + 14, 2, &minute) || !digits(s + 17, 2, &second))
        Py_RETURN_NONE;
    if (month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 59) Py_RETURN_NONE;
    Py_ssize_t i = 19;
    if (s[i] == '.') {
        Py_ssize_t start = ++i;
        int scale = 100000;
        while (i < n && s[i] >= '0' && s[i] <= '9') {
            if (scale) { /* digits beyond microseconds are truncated, as fromisoformat does */
                micro += (s[i] - '0') * scale;
                scale /= 10;
            }
            i++;
        }
        if (i == start) Py_RETURN_NONE;
    }
    if (i >= n) Py_RETURN_NONE;
    if (s[i] == 'Z' || s[i] == 'z') {
        i++;
    } else if (s[i] == '+' || s[i] == '-') {
        int oh, om;
        if (n - i != 6 || s[i + 3] != ':' || !digits(s + i + 1, 2, &oh) || !digits(s + i + 4, 2, &om) || oh > 23 ||
            om > 59)
            Py_RETURN_NONE;
        offset = (s[i] == '+' ? 1 : -1) * (oh * 60 + om);
        i += 6;
    } else {
        Py_RETURN_NONE;
    }
    if (i != n || year < 1 || day > month_days(year, month)) Py_RETURN_NONE;
    long long seconds = days_from_civil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second -
                        (long long)offset * 60;
    long long days = seconds >= 0 ? seconds / 86400 : -((-seconds + 86399) / 86400);
    long long rest = seconds - days * 86400, y;
    int m, d;
    civil_from_days(days, &y, &m, &d);
    if (y < 1 || y > 9999) Py_RETURN_NONE; /* moved out of datetime's years by the offset */
    return PyDateTimeAPI->DateTime_FromDateAndTime((int)y, m, d, (int)(rest / 3600), (int)(rest / 60 % 60),
                                                   (int)(rest % 60), micro, PyDateTime_TimeZone_UTC,
                                                   PyDateTimeAPI->DateTimeType);
}

static PyMethodDef methods[] = {
    {"parse_occurred_at", parse_occurred_at, METH_O,
     "parse_occurred_at(text)\n--\n\nThe aware UTC datetime an RFC 3339 date-time with offset names, or None "
     "(cohortflow.contract.timestamps.parse_occurred_at, compiled)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "cohortflow.contract._timestamps", "RFC 3339 timestamps as the contract wants them, compiled.", -1,
    methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__timestamps(void) {
    PyDateTime_IMPORT;
    if (!PyDateTimeAPI) return NULL;
    return PyModule_Create(&module);
}
