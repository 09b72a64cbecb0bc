"""Library: authors, books, members and loans; fees and rules live in the policy documents."""
from toolorch.synth.domain import (
    Arg,
    Col,
    DbTool,
    Domain,
    Fact,
    Table,
    between,
    day,
    person,
    pick,
)

GENRES = ("fantasy", "mystery", "history", "science", "poetry", "biography", "travel", "cooking")

TABLES = (
    Table("authors", (Col("name", "TEXT", person, unique=True),
                      Col("country", "TEXT", lambda f, r: f.country()),
                      Col("birth_year", "INTEGER", between(1930, 1995)))),
    Table("books", (Col("title", "TEXT", lambda f, r: f.catch_phrase().title(), unique=True),
                    Col("author_id", "INTEGER", ref="authors"),
                    Col("genre", "TEXT", pick(*GENRES)),
                    Col("year", "INTEGER", between(1960, 2024)),
                    Col("copies", "INTEGER", between(1, 9)))),
    Table("members", (Col("name", "TEXT", person, unique=True),
                      Col("city", "TEXT", lambda f, r: f.city()),
                      Col("joined", "TEXT", day("2015-01-01", 3000)))),
    Table("loans", (Col("book_id", "INTEGER", ref="books"), Col("member_id", "INTEGER", ref="members"),
                    Col("loan_date", "TEXT", day("2024-01-01", 365)),
                    Col("days_late", "INTEGER", pick(0, 0, 0, 1, 2, 3, 5, 8, 13)))),
)

TITLE = Arg("title", "books.title", quote=True)
AUTHOR = Arg("author", "authors.name")
MEMBER = Arg("member", "members.name")
GENRE = Arg("genre", "books.genre")
LOANS = "FROM loans l JOIN books b ON b.id = l.book_id JOIN members m ON m.id = l.member_id"

TOOLS = (
    DbTool("get_book_author", "Name of the author of a book, by exact title.",
           "SELECT a.name FROM books b JOIN authors a ON a.id = b.author_id WHERE b.title = :title",
           (TITLE,), "the author of {title}", returns="authors.name"),
    DbTool("get_author_country", "Home country of an author, by name.",
           "SELECT country FROM authors WHERE name = :author", (AUTHOR,), "the home country of {author}"),
    DbTool("get_author_birth_year", "Birth year of an author, by name.",
           "SELECT birth_year FROM authors WHERE name = :author", (AUTHOR,), "the birth year of {author}",
           answer_type="number"),
    DbTool("get_book_genre", "Genre of a book, by exact title.", "SELECT genre FROM books WHERE title = :title",
           (TITLE,), "the genre of {title}"),
    DbTool("get_book_year", "Publication year of a book, by exact title.",
           "SELECT year FROM books WHERE title = :title", (TITLE,), "the publication year of {title}",
           answer_type="number"),
    DbTool("get_member_city", "City a member lives in, by name.", "SELECT city FROM members WHERE name = :member",
           (MEMBER,), "the home city of library member {member}"),
    DbTool("get_last_borrowed_book", "Title of the book a member borrowed most recently.",
           f"SELECT b.title {LOANS} WHERE m.name = :member ORDER BY l.loan_date DESC, l.id DESC LIMIT 1",
           (MEMBER,), "the title of the book {member} borrowed most recently", returns="books.title",
           entity="the book {member} borrowed most recently"),
    DbTool("list_books_by_author", "Titles of all books by an author, comma-separated.",
           "SELECT group_concat(b.title, ', ') FROM books b JOIN authors a ON a.id = b.author_id "
           "WHERE a.name = :author HAVING count(*) > 0", (AUTHOR,), "the titles of the books written by {author}",
           role="list", answer_type="list"),
    DbTool("count_member_loans", "Number of loans a member has made.",
           f"SELECT count(*) {LOANS} WHERE m.name = :member", (MEMBER,), "the number of loans made by {member}",
           role="aggregate", answer_type="number"),
    DbTool("sum_member_days_late", "Total days late over all of a member's loans.",
           f"SELECT coalesce(sum(l.days_late), 0) {LOANS} WHERE m.name = :member", (MEMBER,),
           "the total number of days {member} returned books late", role="aggregate", answer_type="number"),
    DbTool("avg_copies_by_genre", "Average number of copies held per book of a genre (2 decimals).",
           "SELECT round(avg(copies), 2) FROM books WHERE genre = :genre", (GENRE,),
           "the average number of copies held per {genre} book", role="aggregate", answer_type="number"),
    DbTool("count_genre_books_since", "Number of books of a genre published in or after a year.",
           "SELECT count(*) FROM books WHERE genre = :genre AND year >= :year",
           (GENRE, Arg("year", "books.year", "integer")), "the number of {genre} books published in {year} or later",
           role="aggregate", answer_type="number"),
    DbTool("max_copies_by_author", "Largest number of copies held of any single book by an author.",
           "SELECT max(b.copies) FROM books b JOIN authors a ON a.id = b.author_id WHERE a.name = :author",
           (AUTHOR,), "the largest number of copies held of any book by {author}", role="aggregate",
           answer_type="number"),
    DbTool("list_member_loans", "A member's loans: date, title and days late, newest first.",
           f"SELECT l.loan_date, b.title, l.days_late {LOANS} WHERE m.name = :member ORDER BY l.loan_date DESC",
           (MEMBER,), "the loans of {member}", role="rows", value_col="days_late"),
)

FACTS = (
    Fact("late_fee", "Late fees", "Late fees at {org} are ${v} per day for each overdue item.",
         ("0.10", "0.25", "0.50"), "How much is the late fee per day at {org}?", "number"),
    Fact("max_loans", "Borrowing limits", "A member of {org} may have at most {v} items on loan at once.",
         ("5", "8", "10", "12"), "How many items may a member have on loan at once?", "number"),
    Fact("loan_period", "Loan period", "Books are lent for {v} days and can be returned at any branch.",
         ("14", "21", "28"), "For how many days are books lent?", "number"),
    Fact("renewals", "Renewals", "Each loan can be renewed {v} times online unless another member holds it.",
         ("2", "3", "4"), "How many times can a loan be renewed online?", "number"),
    Fact("saturday", "Opening hours", "On Saturdays the main building opens at {v} and closes at 5 pm.",
         ("9 am", "10 am", "11 am"), "What time does the main building open on Saturdays?"),
    Fact("card_fee", "Lost cards", "Replacing a lost library card costs ${v}; the first replacement is free.",
         ("2", "3", "5"), "How much does it cost to replace a lost library card?", "number"),
    Fact("printing", "Printing", "Black and white printing costs ${v} per page; colour costs three times more.",
         ("0.10", "0.15", "0.20"), "What is the cost of a black and white printed page?", "number"),
    Fact("study_rooms", "Study rooms", "Study rooms can be booked for up to {v} hours per day per member.",
         ("2", "3", "4"), "For how many hours per day can a study room be booked?", "number"),
    Fact("holds", "Holds", "Items on hold wait on the pickup shelf for {v} days before they are released.",
         ("5", "7", "10"), "How many days do held items wait on the pickup shelf?", "number"),
    Fact("wifi", "Wi-Fi", "The guest Wi-Fi network of {org} is called {v} and needs no password.",
         ("ReadFreely", "LibGuest", "OpenStacks"), "What is the name of the guest Wi-Fi network?"),
)

DOMAIN = Domain("library", "The catalogue, members and loans of {org}.",
                lambda f, r: f"{f.city()} Public Library", TABLES, TOOLS, FACTS)
