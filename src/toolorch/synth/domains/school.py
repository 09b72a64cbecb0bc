"""School: teachers, students, courses and enrolments; calendar and grading rules live in the documents."""
from toolorch.synth.domain import (
    Arg,
    Col,
    DbTool,
    Domain,
    Fact,
    Table,
    between,
    person,
    pick,
)

SUBJECTS = ("Algebra", "Biology", "Chemistry", "History", "Literature", "Physics", "Spanish", "Art", "Geography")

TABLES = (
    Table("teachers", (Col("name", "TEXT", person, unique=True), Col("subject", "TEXT", pick(*SUBJECTS)),
                       Col("office", "TEXT", lambda f, r: f"Room {r.randint(100, 350)}"))),
    Table("students", (Col("name", "TEXT", person, unique=True), Col("grade_level", "INTEGER", between(9, 12)),
                       Col("city", "TEXT", lambda f, r: f.city()))),
    Table("courses", (Col("title", "TEXT", lambda f, r: f"{r.choice(SUBJECTS)} {r.randint(100, 499)}", unique=True),
                      Col("teacher_id", "INTEGER", ref="teachers"), Col("credits", "INTEGER", pick(1, 2, 3, 4)))),
    Table("enrollments", (Col("student_id", "INTEGER", ref="students"), Col("course_id", "INTEGER", ref="courses"),
                          Col("term", "TEXT", pick("fall 2023", "spring 2024", "fall 2024")),
                          Col("score", "INTEGER", between(48, 100)))),
)

COURSE = Arg("course", "courses.title")
TEACHER = Arg("teacher", "teachers.name")
STUDENT = Arg("student", "students.name")
GRADES = "FROM enrollments e JOIN students s ON s.id = e.student_id JOIN courses c ON c.id = e.course_id"

TOOLS = (
    DbTool("get_course_teacher", "Teacher of a course, by course title.",
           "SELECT t.name FROM courses c JOIN teachers t ON t.id = c.teacher_id WHERE c.title = :course", (COURSE,),
           "the teacher of {course}", returns="teachers.name"),
    DbTool("get_teacher_subject", "Subject a teacher teaches.", "SELECT subject FROM teachers WHERE name = :teacher",
           (TEACHER,), "the subject taught by {teacher}"),
    DbTool("get_teacher_office", "Office of a teacher.", "SELECT office FROM teachers WHERE name = :teacher",
           (TEACHER,), "the office of {teacher}"),
    DbTool("get_course_credits", "Credits a course is worth.", "SELECT credits FROM courses WHERE title = :course",
           (COURSE,), "the number of credits {course} is worth", answer_type="number"),
    DbTool("get_student_grade_level", "Grade level of a student.",
           "SELECT grade_level FROM students WHERE name = :student", (STUDENT,), "the grade level of {student}",
           answer_type="number"),
    DbTool("get_student_best_course", "Course in which a student scored highest.",
           f"SELECT c.title {GRADES} WHERE s.name = :student ORDER BY e.score DESC, e.id LIMIT 1", (STUDENT,),
           "the title of the course in which {student} scored highest", returns="courses.title",
           entity="the course in which {student} scored highest"),
    DbTool("list_teacher_courses", "Titles of all courses a teacher teaches, comma-separated.",
           "SELECT group_concat(c.title, ', ') FROM courses c JOIN teachers t ON t.id = c.teacher_id "
           "WHERE t.name = :teacher HAVING count(*) > 0", (TEACHER,), "the courses taught by {teacher}",
           role="list", answer_type="list"),
    DbTool("count_course_enrollments", "Number of enrolments in a course.",
           "SELECT count(*) FROM enrollments e JOIN courses c ON c.id = e.course_id WHERE c.title = :course",
           (COURSE,), "the number of enrolments in {course}", role="aggregate", answer_type="number"),
    DbTool("avg_course_score", "Average score in a course (2 decimals).",
           "SELECT round(avg(e.score), 2) FROM enrollments e JOIN courses c ON c.id = e.course_id "
           "WHERE c.title = :course", (COURSE,), "the average score in {course}", role="aggregate",
           answer_type="number"),
    DbTool("max_student_score", "Highest score a student has achieved.",
           f"SELECT max(e.score) {GRADES} WHERE s.name = :student", (STUDENT,), "the highest score of {student}",
           role="aggregate", answer_type="number"),
    DbTool("count_grade_students", "Number of students in a grade level.",
           "SELECT count(*) FROM students WHERE grade_level = :grade_level",
           (Arg("grade_level", "students.grade_level", "integer"),), "the number of students in grade {grade_level}",
           role="aggregate", answer_type="number"),
    DbTool("list_student_scores", "A student's scores: course, term and score.",
           f"SELECT c.title AS course, e.term, e.score {GRADES} WHERE s.name = :student ORDER BY e.id", (STUDENT,),
           "the course scores of {student}", role="rows", value_col="score"),
)

FACTS = (
    Fact("pass_mark", "Grading", "The passing score at {org} is {v} out of 100.", ("60", "65", "70"),
         "What is the passing score?", "number"),
    Fact("start_time", "School day", "Classes start at {v} every weekday.", ("7:45 am", "8:00 am", "8:15 am"),
         "What time do classes start?"),
    Fact("credits_needed", "Graduation", "Graduation requires {v} credits in total.", ("22", "24", "26"),
         "How many credits are required to graduate?", "number"),
    Fact("absences", "Attendance", "More than {v} unexcused absences in a term triggers a parent meeting.",
         ("3", "5", "8"), "How many unexcused absences in a term trigger a parent meeting?", "number"),
    Fact("lunch", "Cafeteria", "A school lunch costs ${v}.", ("3.25", "3.75", "4.10"), "How much does a school lunch cost?",
         "number"),
    Fact("late_work", "Late work", "Late homework loses {v}% per day.", ("5", "10", "15"),
         "How many percent does late homework lose per day?", "number"),
    Fact("library_hours", "Library", "The school library stays open until {v} on weekdays.", ("4 pm", "5 pm", "6 pm"),
         "Until what time is the school library open on weekdays?"),
    Fact("mascot", "About us", "The mascot of {org} is the {v}.", ("Falcons", "Otters", "Comets"),
         "What is the school mascot?"),
    Fact("honor_roll", "Honor roll", "Students with an average of {v} or more make the honor roll.", ("85", "88", "90"),
         "What average score earns a place on the honor roll?", "number"),
    Fact("retake", "Retakes", "A failed exam may be retaken once within {v} weeks.", ("2", "3", "4"),
         "Within how many weeks can a failed exam be retaken?", "number"),
)

DOMAIN = Domain("school", "Teachers, students, courses and grades of {org}.",
                lambda f, r: f"{f.city()} High School", TABLES, TOOLS, FACTS)
